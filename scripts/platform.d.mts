// Types of scripts/platform.mjs (plain JavaScript so that the install script
// can load it before dist/ is built).

/** The napi-rs platform name of this process, e.g. `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
export function platformTriple(platform?: NodeJS.Platform, arch?: NodeJS.Architecture): string;
/** File name of the addon for a platform: `scgi.<triple>.node`. */
export function addonFileName(triple?: string): string;
/** The per-platform npm package that carries the prebuilt addon: `scgi-<triple>`. */
export function platformPackageName(triple?: string): string;
/** The napi-rs platform name of a Rust target in `package.json` `napi.targets`. */
export function tripleOfRustTarget(target: string): string;
