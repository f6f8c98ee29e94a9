#!/usr/bin/env node
// `npm run pack:native [-- --out <dir>]`: build the addon for this machine in
// release mode, place it in its per-platform package `npm/<triple>/`, and pack
// that package. The last line of output is the path of the `.tgz` (in <dir>,
// default the repository root, where `npm pack` puts the main package).
//
//   npm run pack:native && npm pack
//   npm install ./scgi-<triple>-<v>.tgz ./scgi-<v>.tgz   # no compile, native parser
//
// The build is `npm run build:native`'s (same flags, read from package.json)
// with the output directory set to `npm/<triple>/`, so the addon the checkout
// itself loads (./scgi.<triple>.node) is not rewritten while in use.
// The release workflow (.github/workflows/release.yml) builds the other targets.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { addonFileName, platformPackageName, platformTriple } from './platform.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const { values } = parseArgs({ options: { out: { type: 'string' } } });
const out = resolve(values.out ?? root);

function die(message) {
  console.error(`pack:native: ${message}`);
  process.exit(1);
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const triple = platformTriple();
const name = platformPackageName(triple);
const dir = join(root, 'npm', triple);
if (!existsSync(join(dir, 'package.json'))) die(`no npm/${triple}/package.json: ${triple} is not in napi.targets`);
const sub = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
if (sub.name !== name) die(`npm/${triple}/package.json is named ${sub.name}, not ${name}`);
if (sub.version !== pkg.version) die(`npm/${triple}/package.json has version ${sub.version}, the package ${pkg.version} (run node scripts/sync-versions.mjs)`);

// `napi build ...` from build:native, with --output-dir npm/<triple> and the
// type definitions (which nothing ships) still written under target/.
const args = pkg.scripts['build:native'].split(/\s+/).slice(1);
const set = (flag, value) => {
  const i = args.indexOf(flag);
  if (i === -1) args.push(flag, value);
  else args[i + 1] = value;
};
set('--output-dir', relative(root, dir));
set('--dts', relative(dir, join(root, 'target', 'scgi-napi.d.ts')));
const cliPkg = require.resolve('@napi-rs/cli/package.json');
const bin = JSON.parse(readFileSync(cliPkg, 'utf8')).bin;
const cli = join(dirname(cliPkg), typeof bin === 'string' ? bin : bin.napi);
console.log(`pack:native: napi ${args.join(' ')}`);
const built = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (built.status !== 0) die(`napi build exited with ${built.status ?? built.signal}`);
const file = join(dir, addonFileName(triple));
if (!existsSync(file)) die(`napi build did not write ${file}`);
if (sub.main !== addonFileName(triple)) die(`npm/${triple}/package.json main is ${sub.main}, not ${addonFileName(triple)}`);

// The MIT notice goes with every copy (npm includes LICENSE at a package's root).
copyFileSync(join(root, 'LICENSE'), join(dir, 'LICENSE'));
mkdirSync(out, { recursive: true });
const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', out], {
  cwd: dir,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
  shell: process.platform === 'win32',
});
if (packed.status !== 0) die(`npm pack exited with ${packed.status ?? packed.signal}`);
const [info] = JSON.parse(packed.stdout);
const files = info.files.map((f) => f.path).sort();
console.log(`pack:native: ${name}@${info.version}: ${files.join(', ')} (${info.size} bytes packed, ${info.unpackedSize} unpacked)`);
console.log(join(out, info.filename));
