// What `npm install scgi` does, from the tarballs this checkout packs: the
// main package (`npm pack`) and this machine's per-platform package (`npm run
// pack:native`), installed into fresh projects as a user would, offline
// (`--offline`, an empty cache, an unreachable registry: only the local
// tarballs can satisfy anything; the other platforms' optionalDependencies
// are skipped as npm skips any missing optional dependency):
//   (a) both tarballs, no cargo on PATH: the prebuilt addon, no compile;
//   (b) the main tarball alone, cargo on PATH: a source build that leaves
//       only the .node file behind;
//   (c) the main tarball alone, no cargo: the TS parser, exit 0, one line.
//
// Slow (a release cargo build), so they run once per `npm run test:all`:
// these installs run in child processes with SCGI_PARSER unset, so they do not
// depend on the parser of the vitest run; scripts/test-all.mjs runs this file
// in its SCGI_PARSER=native pass and leaves it out of the later passes
// (`--exclude`), so it is never skipped, only not repeated.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonFileName, platformPackageName, platformTriple } from '../scripts/platform.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const triple = platformTriple();
const hasCargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0;
const SLOW = 15 * 60_000; // a cold release build with LTO on a busy 2-core machine: about 1-3 min

/** The environment of a user's shell: none of npm's own npm_* variables (npm_config_local_prefix would point npm at this repo), no SCGI_*, no CARGO_TARGET_DIR. */
function userEnv(opts: { cargo: boolean; tmp: string }): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || k.startsWith('SCGI_') || k === 'INIT_CWD' || k === 'CARGO_TARGET_DIR' || k === 'NODE_OPTIONS' || k.startsWith('VITEST')) continue;
    env[k] = v;
  }
  const path = (process.env.PATH ?? '').split(delimiter);
  env.PATH = opts.cargo ? path.join(delimiter) : path.filter((d) => d !== '' && !existsSync(join(d, 'cargo'))).join(delimiter);
  env.TMPDIR = opts.tmp;
  env.CARGO_NET_OFFLINE = 'true'; // the crates are in cargo's cache since the checkout built them
  return env;
}

/** Every file under a directory, as [relative path, size]. */
function walk(dir: string, prefix = ''): [string, number][] {
  const out: [string, number][] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + e.name;
    if (e.isDirectory()) out.push(...walk(join(dir, e.name), `${rel}/`));
    else out.push([rel, lstatSync(join(dir, e.name)).size]);
  }
  return out;
}

describe('npm install from the packed tarballs', () => {
  let work: string;
  let mainTgz: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'scgi-install-'));
    // dist/ is built by test/global-setup.ts; --ignore-scripts so that `prepare`
    // does not rewrite dist/ under the other test files.
    const r = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    mainTgz = join(work, JSON.parse(r.stdout)[0].filename);
  }, SLOW);
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** A fresh project in which `npm install <tarballs>` runs as a user's would. */
  function install(name: string, tarballs: string[], cargo: boolean) {
    const project = join(work, name);
    const tmp = join(work, `${name}-tmp`);
    mkdirSync(project);
    mkdirSync(tmp);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `app-${name}`, version: '1.0.0', private: true }));
    const env = userEnv({ cargo, tmp });
    if (!cargo) expect(spawnSync('cargo', ['--version'], { env }).error, 'cargo is still on PATH').toBeDefined();
    const started = Date.now();
    const r = spawnSync(
      'npm',
      [
        'install',
        ...tarballs,
        '--offline',
        '--cache',
        join(work, `${name}-cache`),
        '--registry',
        'http://127.0.0.1:9/',
        '--no-audit',
        '--no-fund',
        '--no-update-notifier',
        '--foreground-scripts', // the install script's lines in the output
      ],
      { cwd: project, env, encoding: 'utf8', timeout: SLOW },
    );
    const seconds = (Date.now() - started) / 1000;
    const output = `${r.stdout}${r.stderr}`;
    const lines = output.split('\n').filter((l) => l.startsWith('scgi: '));
    const pkgDir = join(project, 'node_modules', 'scgi');
    const files = existsSync(pkgDir) ? walk(pkgDir) : [];
    const size = files.reduce((n, [, s]) => n + s, 0);
    console.log(`install (${name}): ${seconds.toFixed(1)} s, node_modules/scgi ${(size / 1e6).toFixed(2)} MB in ${files.length} files; ${lines.join(' | ')}`);
    return { r, output, lines, project, tmp, pkgDir, files, size, env };
  }

  /** `parserInfo` as the installed package reports it in that project. */
  function parserInfo(project: string, env: NodeJS.ProcessEnv): { backend: string; file: string | null; loadError: string | null } {
    const code = "import { parserInfo } from 'scgi'; console.log(JSON.stringify({ ...parserInfo, loadError: parserInfo.loadError?.message ?? null }));";
    const r: SpawnSyncReturns<string> = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: project, env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  }

  it.skipIf(!hasCargo)(
    '(a) main + platform package, no cargo on PATH: the prebuilt addon loads, nothing compiles',
    () => {
      const packed = spawnSync(process.execPath, [join(root, 'scripts', 'pack-native.mjs'), '--out', work], { cwd: root, encoding: 'utf8' });
      expect(packed.status, packed.stderr).toBe(0);
      const last = packed.stdout.trimEnd().split('\n').at(-1)!;
      expect(last).toBe(
        join(work, `${platformPackageName(triple)}-${JSON.parse(spawnSync('npm', ['pkg', 'get', 'version'], { cwd: root, encoding: 'utf8' }).stdout)}.tgz`),
      );
      expect(existsSync(last)).toBe(true);

      const a = install('a', [last, mainTgz], false);
      expect(a.r.status, a.output).toBe(0);
      expect(a.lines, 'the install script said something: it did not find the platform package').toEqual([]);
      expect(a.files.map(([f]) => f).filter((f) => f.endsWith('.node') || f.startsWith('target/'))).toEqual([]);
      const info = parserInfo(a.project, a.env);
      expect(info).toMatchObject({ backend: 'native', loadError: null });
      expect(info.file).toBe(join(a.project, 'node_modules', platformPackageName(triple), addonFileName(triple)));
      expect(a.size).toBeLessThan(3e6);
    },
    SLOW,
  );

  it.skipIf(!hasCargo)(
    '(b) main alone, cargo on PATH: built from source in a temporary target dir, only the .node left',
    () => {
      const b = install('b', [mainTgz], true);
      expect(b.r.status, b.output).toBe(0);
      expect(b.lines[0]).toMatch(/^scgi: building the native parser with cargo, ~\d+ s/);
      expect(b.lines[1]).toMatch(/^scgi: native parser built in \d+ s: /);
      expect(b.lines).toHaveLength(2);
      expect(existsSync(join(b.pkgDir, 'target'))).toBe(false);
      expect(b.files.map(([f]) => f).filter((f) => f.endsWith('.node'))).toEqual([addonFileName(triple)]);
      // npm on Node >= 22 enables Node's module compile cache, which lives in
      // <TMPDIR>/node-compile-cache: npm's, not the install script's.
      const left = readdirSync(b.tmp).filter((e) => e !== 'node-compile-cache');
      expect(left, 'the temporary target dir was left behind').toEqual([]);
      const info = parserInfo(b.project, b.env);
      expect(info).toMatchObject({ backend: 'native', loadError: null, file: join(b.pkgDir, addonFileName(triple)) });
      expect(b.size).toBeLessThan(3e6);
    },
    SLOW,
  );

  it(
    '(c) main alone, no cargo: the TS parser, exit 0, one line that says so and how to get the native one',
    () => {
      const c = install('c', [mainTgz], false);
      expect(c.r.status, c.output).toBe(0);
      expect(c.lines).toHaveLength(1);
      expect(c.lines[0]).toMatch(
        /no cargo on PATH; the pure-TypeScript parser will be used \(for the native one: install Rust from https:\/\/rustup.rs, then `npm rebuild scgi`\)$/,
      );
      expect(c.files.map(([f]) => f).filter((f) => f.endsWith('.node') || f.startsWith('target/'))).toEqual([]);
      const info = parserInfo(c.project, c.env);
      expect(info.backend).toBe('js');
      expect(info.file).toBeNull();
      expect(info.loadError).toContain(platformPackageName(triple));
    },
    SLOW,
  );
});
