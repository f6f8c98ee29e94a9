/**
 * Loader for the Rust addon (crates/scgi-napi). Only `index.ts` calls it, and
 * only when SCGI_PARSER is not `js`. Throws when the addon cannot load.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { ParserBackend, Status } from './types.ts';

interface Addon {
  parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize: number, maxHeaders: number, flags: number): number;
}

/** napi-rs platform triple for this process, e.g. `linux-x64-gnu`. */
export function platformTriple(): string {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    const libc = report?.header?.glibcVersionRuntime ? 'gnu' : 'musl';
    return `linux-${arch}-${libc}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** Where the addon may be: next to the package root (local build), then the per-platform npm package. */
function candidates(triple: string): string[] {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return [join(root, `scgi.${triple}.node`), `scgi-${triple}`];
}

/** The raw addon (its only export is `parse`). */
export function loadAddon(): Addon {
  const require = createRequire(import.meta.url);
  const triple = platformTriple();
  const errors: unknown[] = [];
  for (const c of candidates(triple)) {
    if (c.startsWith('/') && !existsSync(c)) {
      errors.push(new Error(`not found: ${c}`));
      continue;
    }
    try {
      return require(c) as Addon;
    } catch (err) {
      errors.push(err);
    }
  }
  throw new AggregateError(errors, `scgi native parser for ${triple} could not be loaded (build it with \`npm run build:native\`, needs Rust)`);
}

export function loadNative(): ParserBackend {
  const addon = loadAddon();
  return {
    name: 'native',
    parse: addon.parse as ParserBackend['parse'] as (...a: Parameters<ParserBackend['parse']>) => Status,
  };
}
