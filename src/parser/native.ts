/**
 * Loader for the Rust addon (crates/scgi-napi). `index.ts` calls it for the
 * parser, only when SCGI_PARSER is not `js`. Throws when the addon cannot load.
 *
 * Where the addon may be, in order (names from scripts/platform.mjs):
 * 1. `scgi.<triple>.node` at the package root: a local build (`npm run
 *    build:native` in a checkout, or the install script's source build);
 * 2. the per-platform package `scgi-<triple>` (an optionalDependency that npm
 *    installs only on its own os/cpu/libc; see npm/ and scripts/pack-native.mjs);
 * 3. neither: this throws, and `index.ts` falls back to the TS parser.
 *
 * The addon is loaded as a whole module: it may export more than the parser.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { ParserBackend, Status } from './types.ts';
import { addonFileName, platformPackageName, platformTriple } from '../../scripts/platform.mjs';

/** The addon's exports. The parser needs `parse`; other exports are not checked here. */
export interface Addon {
  parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize: number, maxHeaders: number, flags: number): number;
  readonly [name: string]: unknown;
}

/** The loaded addon and the `.node` file it came from. */
export interface LoadedAddon {
  readonly addon: Addon;
  readonly file: string;
}

/** The package root: two levels up from `src/parser/` and from `dist/parser/`. */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'package.json'));
let loaded: LoadedAddon | undefined;

/** The addon, loaded once per process (the first success is kept). */
export function locateAddon(): LoadedAddon {
  if (loaded !== undefined) return loaded;
  const triple = platformTriple();
  const errors: Error[] = [];
  const local = join(root, addonFileName(triple));
  const files: string[] = [];
  if (existsSync(local)) files.push(local);
  else errors.push(new Error(`no local build at ${local}`));
  try {
    files.push(require.resolve(platformPackageName(triple)));
  } catch (err) {
    errors.push(err as Error);
  }
  for (const file of files) {
    try {
      const addon = require(file) as Addon;
      if (typeof addon.parse !== 'function') throw new Error(`${file} exports no parse function`);
      loaded = { addon, file };
      return loaded;
    } catch (err) {
      errors.push(err as Error);
    }
  }
  throw new AggregateError(
    errors,
    `scgi native parser for ${triple} could not be loaded (${errors.map((e) => e.message.split('\n')[0]).join('; ')}); ` +
      `install ${platformPackageName(triple)}, or build it from source with Rust installed (\`npm rebuild scgi\`)`,
  );
}

/** The raw addon, for benchmarks and the native parts beyond the parser. */
export function loadAddon(): Addon {
  return locateAddon().addon;
}

/** The parser backend over the addon (`locateAddon().file` says which file). */
export function loadNative(): ParserBackend {
  const { addon } = locateAddon();
  return {
    name: 'native',
    parse: addon.parse as ParserBackend['parse'] as (...a: Parameters<ParserBackend['parse']>) => Status,
  };
}
