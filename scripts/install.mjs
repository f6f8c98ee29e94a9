#!/usr/bin/env node
// npm `install` script of the scgi package: make sure the native parser addon
// (crates/scgi-napi) is there when it can be, and never fail the install.
//
// 1. `scgi.<triple>.node` already at the package root, or the per-platform
//    package `scgi-<triple>` installed: nothing to do.
// 2. `cargo` on PATH: build it, with the napi CLI when it is installed (a dev
//    checkout), else with plain `cargo build --release -p scgi-napi` and a copy
//    of the library to `scgi.<triple>.node`.
// 3. No cargo, or the build failed: print one line and exit 0; scgi then uses
//    its pure-TypeScript parser (same results, see src/parser/index.ts).
//
// SCGI_SKIP_NATIVE_BUILD=1 skips step 2.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

/** napi-rs platform triple, as src/parser/native.ts computes it. */
function platformTriple() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const report = process.report?.getReport();
    return `linux-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

function fallback(reason) {
  console.log(`scgi: native parser not built (${reason}); the pure-TypeScript parser will be used.`);
  process.exit(0);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], shell: false });
  if (r.error) return r.error.message;
  if (r.status !== 0) return `${cmd} exited with ${r.status ?? r.signal}`;
  return null;
}

try {
  const triple = platformTriple();
  const target = join(root, `scgi.${triple}.node`);
  if (existsSync(target)) process.exit(0);
  try {
    require.resolve(`scgi-${triple}`);
    process.exit(0);
  } catch {
    // not installed: build it
  }
  if (process.env.SCGI_SKIP_NATIVE_BUILD) fallback('SCGI_SKIP_NATIVE_BUILD is set');
  if (!existsSync(join(root, 'crates', 'scgi-napi', 'Cargo.toml'))) fallback('no Rust sources in this package');
  const probe = spawnSync('cargo', ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) fallback('no cargo on PATH');

  console.log(`scgi: building the native parser (${triple}) with cargo...`);
  let cli = null;
  try {
    const pkg = require.resolve('@napi-rs/cli/package.json');
    const bin = JSON.parse(readFileSync(pkg, 'utf8')).bin;
    cli = join(dirname(pkg), typeof bin === 'string' ? bin : bin.napi);
  } catch {
    // no napi CLI (a user install: devDependencies are absent)
  }
  let error;
  if (cli !== null) {
    const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['build:native'];
    const args = script.split(/\s+/).slice(1); // "napi build ..." -> ["build", ...]
    error = run(process.execPath, [cli, ...args]);
  } else {
    error = run('cargo', ['build', '--release', '-p', 'scgi-napi']);
    if (error === null) {
      const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
      const lib = { win32: 'scgi_napi.dll', darwin: 'libscgi_napi.dylib' }[process.platform] ?? 'libscgi_napi.so';
      try {
        copyFileSync(join(targetDir, 'release', lib), target);
      } catch (err) {
        error = err.message;
      }
    }
  }
  if (error !== null) fallback(`build failed: ${error}`);
  if (!existsSync(target)) fallback(`build did not produce ${target}`);
  console.log(`scgi: native parser built: ${target}`);
} catch (err) {
  fallback(err instanceof Error ? err.message : String(err));
}
