// The package as npm sees it: per-platform packages and their pins, the
// release workflow's build matrix, the tarball's contents. Fast: no build, no
// install (test/install.test.ts installs the tarballs).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { addonFileName, platformPackageName, platformTriple, tripleOfRustTarget } from '../scripts/platform.mjs';
import { parserInfo } from '../src/index.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const pkg = readJson(join(root, 'package.json'));
const targets: string[] = pkg.napi.targets;
const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** What npm/<triple>/package.json must say for a Rust target. */
function expectedPlatformFields(target: string) {
  const triple = tripleOfRustTarget(target);
  const [os, cpu, abi] = triple.split('-');
  return {
    name: `scgi-${triple}`,
    os: [os],
    cpu: [cpu],
    ...(os === 'linux' ? { libc: [abi === 'musl' ? 'musl' : 'glibc'] } : {}),
    main: `scgi.${triple}.node`,
  };
}

describe('platform names (scripts/platform.mjs, shared by the loader and the install script)', () => {
  it('maps processes and Rust targets to napi-rs platform names', () => {
    expect(platformTriple('darwin', 'arm64')).toBe('darwin-arm64');
    expect(platformTriple('win32', 'x64')).toBe('win32-x64-msvc');
    expect(platformTriple('linux', 'arm64')).toMatch(/^linux-arm64-(gnu|musl)$/);
    expect(platformTriple()).toBe(
      process.platform === 'linux'
        ? `linux-${process.arch}-${(process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime ? 'gnu' : 'musl'}`
        : platformTriple(process.platform, process.arch),
    );
    expect(targets.map(tripleOfRustTarget)).toEqual([
      'linux-x64-gnu',
      'linux-arm64-gnu',
      'linux-x64-musl',
      'linux-arm64-musl',
      'darwin-x64',
      'darwin-arm64',
      'win32-x64-msvc',
    ]);
    expect(addonFileName('linux-x64-gnu')).toBe('scgi.linux-x64-gnu.node');
    expect(platformPackageName('darwin-arm64')).toBe('scgi-darwin-arm64');
  });

  it('the loader reports the file it loaded', () => {
    if (parserInfo.backend === 'native') {
      // The suite runs in the checkout: the local build comes first.
      expect(parserInfo.file).toBe(join(root, addonFileName()));
    } else {
      expect(parserInfo.file).toBeNull();
    }
  });
});

describe('per-platform packages', () => {
  it('optionalDependencies: scgi-<triple> for every napi.targets entry, pinned to the package version', () => {
    const expected = Object.fromEntries(targets.map((t) => [`scgi-${tripleOfRustTarget(t)}`, pkg.version]));
    expect(pkg.optionalDependencies).toEqual(expected);
  });

  it('npm/<triple>/package.json: one per target, with its os/cpu/libc, main, files and version', () => {
    const dirs = readdirSync(join(root, 'npm')).sort();
    expect(dirs).toEqual(targets.map(tripleOfRustTarget).sort());
    for (const target of targets) {
      const sub = readJson(join(root, 'npm', tripleOfRustTarget(target), 'package.json'));
      const want = expectedPlatformFields(target);
      expect({ name: sub.name, os: sub.os, cpu: sub.cpu, libc: sub.libc, main: sub.main }, target).toEqual({ libc: undefined, ...want });
      expect(sub.files, target).toEqual([want.main]);
      expect(sub.version, target).toBe(pkg.version);
      expect(sub.license).toBe(pkg.license);
    }
  });

  it('package-lock.json has an entry per platform package (npm ci refuses to run without them)', () => {
    const lock = readJson(join(root, 'package-lock.json'));
    expect(lock.packages[''].optionalDependencies).toEqual(pkg.optionalDependencies);
    for (const target of targets) {
      const want = expectedPlatformFields(target);
      const entry = lock.packages[`node_modules/${want.name}`];
      expect(entry, want.name).toMatchObject({ version: pkg.version, optional: true, os: want.os, cpu: want.cpu });
      expect(entry.libc).toEqual(want.libc);
    }
  });

  it('scripts/sync-versions.mjs (npm version) moves every pin, directory and lock entry to a new version', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scgi-sync-'));
    temps.push(dir);
    for (const p of ['package.json', 'package-lock.json', 'npm', 'scripts']) cpSync(join(root, p), join(dir, p), { recursive: true });
    const bumped = { ...pkg, version: '9.8.7' };
    writeFileSync(join(dir, 'package.json'), JSON.stringify(bumped, null, 2));
    execFileSync(process.execPath, [join(dir, 'scripts', 'sync-versions.mjs')]);
    const after = readJson(join(dir, 'package.json'));
    const lock = readJson(join(dir, 'package-lock.json'));
    expect(Object.values(after.optionalDependencies)).toEqual(targets.map(() => '9.8.7'));
    expect(Object.values(lock.packages[''].optionalDependencies)).toEqual(targets.map(() => '9.8.7'));
    for (const target of targets) {
      const triple = tripleOfRustTarget(target);
      expect(readJson(join(dir, 'npm', triple, 'package.json')).version).toBe('9.8.7');
      expect(lock.packages[`node_modules/scgi-${triple}`].version).toBe('9.8.7');
    }
  });
});

describe('scripts/install.mjs: a checkout and an installed package', () => {
  // A copy of what the install script looks at, with a per-platform package
  // installed (a stub: only resolved, never loaded) and no local build, run
  // with cargo off PATH: a checkout must build its own addon (the tests run
  // the addon of its sources), an installed package must use the prebuilt one.
  function run(withTest: boolean, staleAddon = false) {
    const dir = mkdtempSync(join(tmpdir(), 'scgi-installscript-'));
    temps.push(dir);
    for (const p of ['package.json', 'scripts', 'crates', 'Cargo.toml', 'Cargo.lock']) cpSync(join(root, p), join(dir, p), { recursive: true });
    if (withTest) mkdirSync(join(dir, 'test'));
    if (staleAddon) writeFileSync(join(dir, addonFileName()), 'an addon built from older sources');
    const sub = join(dir, 'node_modules', platformPackageName());
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'package.json'), JSON.stringify({ name: platformPackageName(), version: pkg.version, main: addonFileName() }));
    writeFileSync(join(sub, addonFileName()), '');
    const PATH = (process.env.PATH ?? '')
      .split(delimiter)
      .filter((d) => d !== '' && !existsSync(join(d, 'cargo')))
      .join(delimiter);
    const out = execFileSync(process.execPath, [join(dir, 'scripts', 'install.mjs')], { env: { ...process.env, PATH }, encoding: 'utf8' });
    return { out, built: existsSync(join(dir, addonFileName())) };
  }

  it('in a checkout (test/ present) it builds even when scgi-<platform> is installed', () => {
    const { out } = run(true);
    expect(out).toMatch(/^scgi: no cargo on PATH, the native parser was not built; the pure-TypeScript parser will be used/);
  });

  it('in a checkout with an addon already built it still runs the build (cargo decides what is stale)', () => {
    const { out, built } = run(true, true);
    expect(out).toMatch(/^scgi: no cargo on PATH, the native parser was not built/);
    expect(built).toBe(true);
  });

  it('in an installed package (no test/) it uses scgi-<platform>: no build, nothing printed', () => {
    expect(run(false)).toEqual({ out: '', built: false });
  });
});

describe('.github/workflows/release.yml', () => {
  const yml = readFileSync(join(root, '.github', 'workflows', 'release.yml'), 'utf8');
  const job = (name: string) => {
    const start = yml.indexOf(`\n  ${name}:\n`);
    expect(start, `job ${name}`).toBeGreaterThan(0);
    const next = yml.slice(start + 1).search(/\n {2}[a-z-]+:\n/);
    return next === -1 ? yml.slice(start) : yml.slice(start, start + 1 + next);
  };

  it('builds exactly napi.targets, each with --target of its own', () => {
    const build = job('build');
    const entries = build.split(/\n\s+- host: /).slice(1);
    const matrix = entries.map((e) => /\btarget: (\S+)/.exec(e)?.[1]);
    expect(matrix).toEqual(targets);
    for (const e of entries) {
      const target = /\btarget: (\S+)/.exec(e)![1];
      expect(/\bbuild: (.*)/.exec(e)?.[1], target).toContain(`--target ${target}`);
    }
    expect(build).toMatch(/path: scgi\.\*\.node/);
  });

  it('publishes the platform packages before the main package', () => {
    const publish = job('publish');
    const platforms = publish.indexOf('npm publish "$dir"');
    const main = publish.indexOf('run: npm publish --access public');
    expect(publish).toContain('napi artifacts --output-dir artifacts --npm-dir npm');
    expect(platforms).toBeGreaterThan(0);
    expect(main).toBeGreaterThan(platforms);
  });
});

describe('the tarball (npm pack)', () => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }));
  const files: string[] = packed[0].files.map((f: { path: string }) => f.path);

  it('has LICENSE with the copyright line, the examples, and what the install script and the loader need', () => {
    expect(files).toContain('LICENSE');
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 the scgi authors\n/);
    for (const f of ['dist/index.js', 'dist/cli/main.js', 'dist/parser/native.js', 'scripts/install.mjs', 'scripts/platform.mjs', 'Cargo.toml', 'Cargo.lock']) {
      expect(files).toContain(f);
    }
    for (const f of ['crates/scgi-napi/Cargo.toml', 'crates/scgi-napi/build.rs', 'crates/scgi-napi/src/lib.rs', 'crates/scgi-parser/src/lib.rs']) {
      expect(files).toContain(f);
    }
  });

  it("ships every file package.json's main, types, bin and exports name, and the bin is the CLI", () => {
    const named: string[] = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)];
    for (const entry of Object.values(pkg.exports as Record<string, string | Record<string, string>>)) {
      named.push(...(typeof entry === 'string' ? [entry] : Object.values(entry)));
    }
    for (const f of named) expect(files).toContain(f.replace(/^\.\//, ''));
    const version = execFileSync(process.execPath, [join(root, pkg.bin.scgi), '--version'], { encoding: 'utf8' });
    expect(version.trim()).toBe(pkg.version);
  });

  it('ships every examples/ file that the README, the docs and the CLI name', () => {
    const named = new Set<string>();
    const sources = [join(root, 'README.md'), join(root, 'src', 'cli', 'main.ts'), ...readdirSync(join(root, 'docs')).map((f) => join(root, 'docs', f))];
    for (const file of sources) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bexamples\/[\w./-]*[\w]/g)) named.add(m[0]);
    }
    expect(named.size).toBeGreaterThan(3);
    for (const path of named) {
      // a name may be a prefix (`examples/systemd/scgi-app.{socket,service}`)
      expect(
        files.some((f) => f.startsWith(path)),
        `${path} is named but not in the tarball`,
      ).toBe(true);
    }
  });

  it('has no target/, no .node file, no test/, no Rust tests that read test/fixtures, no npm/', () => {
    expect(files.filter((f) => /(^|\/)target\//.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.node'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('test/'))).toEqual([]);
    expect(files.filter((f) => /^crates\/[^/]+\/(tests|examples|benches|fuzz)\//.test(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith('npm/'))).toEqual([]);
  });
});
