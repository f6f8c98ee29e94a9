#!/usr/bin/env node
// Keeps the per-platform packages in step with the main package (npm's
// `version` lifecycle runs this after `npm version` bumps package.json):
// - every `npm/<triple>/package.json` gets the package's version;
// - `optionalDependencies` lists `scgi-<triple>` for every `napi.targets`
//   entry, pinned to that version;
// - package-lock.json has an entry for each of them. Until a version is
//   published npm cannot resolve them, leaves them out of the lock, and then
//   `npm ci` refuses to run ("Missing: scgi-darwin-arm64@ from lock file"). An
//   entry with the platform fields and no `integrity` satisfies it: npm skips
//   the other platforms' packages by os/cpu/libc and, for this machine's,
//   treats the failed download as a skipped optional dependency (the checkout
//   builds its own addon). Once published, `npm install` fills in the rest.
// test/package.test.ts checks the result.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { platformPackageName, tripleOfRustTarget } from './platform.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (file) => JSON.parse(readFileSync(file, 'utf8'));
const write = (file, json) => writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);

const pkg = read(join(root, 'package.json'));
const lock = read(join(root, 'package-lock.json'));
const optional = {};
for (const target of pkg.napi.targets) {
  const triple = tripleOfRustTarget(target);
  const name = platformPackageName(triple);
  const file = join(root, 'npm', triple, 'package.json');
  const sub = read(file);
  if (sub.version !== pkg.version) {
    sub.version = pkg.version;
    write(file, sub);
  }
  optional[name] = pkg.version;
  const key = `node_modules/${name}`;
  const old = lock.packages[key];
  if (old === undefined || old.version !== pkg.version || old.optional !== true) {
    // The fields and their order as npm writes them for a registry package.
    const entry = { version: pkg.version };
    for (const k of ['cpu', 'libc', 'license']) if (sub[k] !== undefined) entry[k] = sub[k];
    entry.optional = true;
    for (const k of ['os', 'engines']) if (sub[k] !== undefined) entry[k] = sub[k];
    lock.packages[key] = entry;
  }
}
pkg.optionalDependencies = optional;
write(join(root, 'package.json'), pkg);

const rootEntry = lock.packages[''];
rootEntry.optionalDependencies = Object.fromEntries(Object.entries(optional).sort(([a], [b]) => a.localeCompare(b, 'en')));
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b, 'en'))));
write(join(root, 'package-lock.json'), lock);
