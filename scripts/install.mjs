#!/usr/bin/env node
// npm `install` script of the scgi package: make sure the native parser addon
// (crates/scgi-napi) is there when it can be, and never fail the install.
//
// In a user's project (the package from its tarball, in node_modules/scgi):
// 1. `scgi.<triple>.node` already at the package root, or the per-platform
//    package `scgi-<triple>` installed (an optionalDependency npm picks by
//    os/cpu/libc): nothing to do, nothing printed.
// 2. Else, with cargo on PATH: one line, `cargo build --release` into a
//    temporary target directory (or $CARGO_TARGET_DIR when the user set one),
//    the library copied to `scgi.<triple>.node` next to package.json, the
//    temporary directory removed, one line.
// 3. No cargo, or the build failed: one line, exit 0; scgi then uses its
//    pure-TypeScript parser (same results, see src/parser/index.ts).
//
// In a dev checkout (the repository, where `npm ci` runs this script too; told
// apart by its `test/` directory, which the tarball never has): build with the
// napi CLI into the repository's `target/` as `npm run build:native` does,
// unless the addon is already there; a prebuilt package is not used (the tests
// must run the addon built from these sources).
//
// SCGI_SKIP_NATIVE_BUILD=1 skips the build (step 2).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonFileName, platformPackageName, platformTriple } from './platform.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const HOW = 'for the native one: install Rust from https://rustup.rs, then `npm rebuild scgi`';

function fallback(reason) {
  console.log(`scgi: ${reason}; the pure-TypeScript parser will be used (${HOW})`);
  process.exit(0);
}

/** The shared library cargo writes for a cdylib crate. */
function cdylibName(name) {
  if (process.platform === 'win32') return `${name}.dll`;
  if (process.platform === 'darwin') return `lib${name}.dylib`;
  return `lib${name}.so`;
}

function hasCargo() {
  const probe = spawnSync('cargo', ['--version'], { stdio: 'ignore' });
  return !probe.error && probe.status === 0;
}

function devBuild(triple, target) {
  // Always run the build in a checkout: cargo rebuilds only what changed
  // (about a second when nothing did), so a stale addon never survives
  // `npm ci` after the Rust sources moved on.
  if (process.env.SCGI_SKIP_NATIVE_BUILD) fallback('SCGI_SKIP_NATIVE_BUILD is set, the native parser was not built');
  if (!hasCargo()) fallback('no cargo on PATH, the native parser was not built');
  const pkg = require.resolve('@napi-rs/cli/package.json');
  const bin = JSON.parse(readFileSync(pkg, 'utf8')).bin;
  const cli = join(dirname(pkg), typeof bin === 'string' ? bin : bin.napi);
  const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['build:native'];
  const args = script.split(/\s+/).slice(1); // "napi build ..." -> ["build", ...]
  console.log(`scgi: building the native parser (${triple}) with cargo into target/ (dev checkout)`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0 || !existsSync(target)) fallback(`the native parser did not build (napi build exited with ${r.status ?? r.signal})`);
  console.log(`scgi: native parser built: ${target}`);
}

function sourceBuild(triple, target) {
  if (process.env.SCGI_SKIP_NATIVE_BUILD) fallback(`no prebuilt native parser for ${triple} and SCGI_SKIP_NATIVE_BUILD is set`);
  if (!existsSync(join(root, 'crates', 'scgi-napi', 'Cargo.toml'))) fallback('no Rust sources in this package');
  if (!hasCargo()) fallback(`no prebuilt native parser for ${triple} (no ${platformPackageName(triple)} package) and no cargo on PATH`);

  const own = process.env.CARGO_TARGET_DIR === undefined || process.env.CARGO_TARGET_DIR === '';
  const targetDir = own ? mkdtempSync(join(tmpdir(), 'scgi-cargo-')) : process.env.CARGO_TARGET_DIR;
  const log = join(tmpdir(), `scgi-native-build-${process.pid}.log`);
  const started = Date.now();
  console.log(`scgi: building the native parser with cargo, ~30 s (no prebuilt ${platformPackageName(triple)} package)`);
  const fd = openSync(log, 'w');
  let r;
  try {
    r = spawnSync('cargo', ['build', '--release', '--locked', '-p', 'scgi-napi', '--manifest-path', join(root, 'Cargo.toml')], {
      cwd: root,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, CARGO_TARGET_DIR: targetDir },
    });
  } finally {
    closeSync(fd);
  }
  let error = r.error ? r.error.message : r.status !== 0 ? `cargo exited with ${r.status ?? r.signal}` : null;
  if (error === null) {
    try {
      copyFileSync(join(targetDir, 'release', cdylibName('scgi_napi')), target);
    } catch (err) {
      error = err.message;
    }
  }
  if (own) rmSync(targetDir, { recursive: true, force: true });
  if (error !== null) fallback(`the native parser did not build (${error}, log: ${log})`);
  rmSync(log, { force: true });
  console.log(`scgi: native parser built in ${Math.round((Date.now() - started) / 1000)} s: ${target}`);
}

try {
  const triple = platformTriple();
  const target = join(root, addonFileName(triple));
  const devCheckout = existsSync(join(root, 'test')) && existsSync(join(root, 'crates'));
  if (devCheckout) {
    devBuild(triple, target);
  } else if (!existsSync(target)) {
    let prebuilt = false;
    try {
      require.resolve(platformPackageName(triple));
      prebuilt = true;
    } catch {
      // no per-platform package for this os/cpu/libc: build from source
    }
    if (!prebuilt) sourceBuild(triple, target);
  }
} catch (err) {
  fallback(`the native parser was not set up (${err instanceof Error ? err.message : String(err)})`);
}
