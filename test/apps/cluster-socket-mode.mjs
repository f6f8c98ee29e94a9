// The cluster primary binds the shared unix socket for its workers: on net,
// node:cluster with SCHED_NONE creates the handle in the primary, through
// net._createServerHandle, and `atBind` records the socket file's mode right
// after that bind; on the native transport the primary binds it through the
// addon (src/server/cluster.ts), where nothing can be wrapped. On both, `atClaim`
// records the mode just before the primary's chmod (UnixSocketFile#claim,
// which follows the bind). The process umask is 0, so a bind not done under a
// narrowed umask makes 0o777. Each worker prints the umask it runs the app
// under; the primary prints what it saw, then exits.
//   node cluster-socket-mode.mjs <socket path> <socketMode, octal>
import cluster from 'node:cluster';
import fs, { statSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import { resolve } from 'node:path';
import { serve } from 'scgi';

const [path, mode] = process.argv.slice(2);
const atBind = [];
const atClaim = [];
if (cluster.isPrimary) {
  process.umask(0);
  const chmod = fs.chmodSync;
  fs.chmodSync = (p, ...rest) => {
    if (typeof p === 'string' && resolve(p) === resolve(path)) atClaim.push((statSync(path).mode & 0o777).toString(8));
    return chmod(p, ...rest);
  };
  syncBuiltinESMExports();
  const create = net._createServerHandle;
  net._createServerHandle = function (address, ...rest) {
    const handle = create.call(this, address, ...rest);
    // the worker may name it relative to the (shared) working directory
    if (typeof address === 'string' && resolve(address) === resolve(path)) atBind.push((statSync(path).mode & 0o777).toString(8));
    return handle;
  };
}
const server = await serve((_headers, client) => client.end('Status: 200 OK\r\n\r\nhi'), {
  address: path,
  parallelism: 2,
  socketMode: Number.parseInt(mode, 8),
  handleSignals: false,
});
if (cluster.isWorker) console.log(JSON.stringify({ workerUmask: process.umask() }));
if (cluster.isPrimary) {
  const after = (statSync(path).mode & 0o777).toString(8);
  const umask = process.umask();
  await server.close();
  console.log(JSON.stringify({ atBind, atClaim, after, umask, transport: server.transport }));
}
