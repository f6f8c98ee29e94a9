// A cluster app whose TCP port is taken (the primary holds it with a plain
// net.Server before serve()): the primary's serve() rejects, and the app
// prints the error's code and message as its ready line. SCGI_TEST_TRANSPORT
// picks the transport (the primary binds for native workers; node:cluster
// binds for net ones, when a worker asks).
import cluster from 'node:cluster';
import { createServer } from 'node:net';
import { serve } from 'scgi';

if (cluster.isPrimary) {
  const holder = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => holder.once('listening', r));
  process.env.SCGI_TEST_PORT = String(holder.address().port);
}
const options = {
  address: '127.0.0.1',
  port: Number(process.env.SCGI_TEST_PORT),
  parallelism: 2,
  transport: process.env.SCGI_TEST_TRANSPORT,
  handleSignals: false,
};
if (cluster.isWorker) {
  await serve(() => {}, options);
} else {
  try {
    await serve(() => {}, options);
    console.log(JSON.stringify({ ready: 'listening' }));
  } catch (err) {
    console.log(JSON.stringify({ ready: err.code, message: err.message }));
  }
  process.exit(0);
}
