// Where the native addon of this package lives, for this process's platform.
// The one home of these names: the loader (src/parser/native.ts, compiled to
// dist/parser/native.js), the install script (scripts/install.mjs, which runs
// before dist/ exists in a dev checkout) and scripts/pack-native.mjs all import
// this file. It is plain JavaScript so that every one of them can load it, in
// the repository and in the published package (it ships under scripts/).
import { readFileSync } from 'node:fs';

/**
 * The C library of this Linux process: `gnu` or `musl`. Reads `/usr/bin/ldd`
 * first (cheap), else asks the process report (what Node itself links against).
 */
function linuxLibc() {
  try {
    const ldd = readFileSync('/usr/bin/ldd', 'latin1');
    if (ldd.includes('musl')) return 'musl';
    if (ldd.includes('GNU C Library') || ldd.includes('GLIBC')) return 'gnu';
  } catch {
    // no ldd (a minimal image): ask the report
  }
  const report = process.report?.getReport();
  return report?.header?.glibcVersionRuntime ? 'gnu' : 'musl';
}

/** The napi-rs platform name of this process, e.g. `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
export function platformTriple(platform = process.platform, arch = process.arch) {
  if (platform === 'linux') return `linux-${arch}-${linuxLibc()}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** File name of the addon for a platform: `scgi.<triple>.node` (what `napi build --platform` writes). */
export function addonFileName(triple = platformTriple()) {
  return `scgi.${triple}.node`;
}

/** The per-platform npm package that carries the prebuilt addon: `scgi-<triple>`. */
export function platformPackageName(triple = platformTriple()) {
  return `scgi-${triple}`;
}

const ARCH = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' };
const OS = { linux: 'linux', darwin: 'darwin', windows: 'win32' };

/**
 * The napi-rs platform name of a Rust target in `package.json` `napi.targets`:
 * `x86_64-unknown-linux-gnu` → `linux-x64-gnu`, `aarch64-apple-darwin` →
 * `darwin-arm64`, `x86_64-pc-windows-msvc` → `win32-x64-msvc`. The `npm/`
 * directories and the `optionalDependencies` are named after it.
 */
export function tripleOfRustTarget(target) {
  const [cpu, , sys, abi] = target.split('-');
  const arch = ARCH[cpu];
  const os = OS[sys];
  if (arch === undefined || os === undefined) throw new Error(`unsupported Rust target ${target}`);
  if (os === 'darwin') return `darwin-${arch}`;
  return `${os}-${arch}-${abi}`;
}
