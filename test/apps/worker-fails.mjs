// A cluster app whose workers exit before they listen: the primary's serve()
// rejects, and the app prints the error code as its ready line.
import cluster from 'node:cluster';
import { serve } from 'scgi';

if (cluster.isWorker) process.exit(5);
try {
  await serve(() => {}, { address: process.env.SCGI_TEST_ADDRESS, parallelism: 2, handleSignals: false });
  console.log(JSON.stringify({ ready: 'listening' }));
} catch (err) {
  console.log(JSON.stringify({ ready: err.code, message: err.message }));
}
process.exit(0);
