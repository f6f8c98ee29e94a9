// For test/reliability/outside-faults.test.ts: a cluster (parallelism 2) whose
// first worker fails before it listens (exit 3) while the second starts
// normally. Every process prints JSON lines: {"worker": pid} when a worker
// starts, {"rejected": code} when serve() rejects in the primary. The primary
// then does nothing more: if nothing of serve() keeps running, it exits by
// itself (code 0) and every worker is gone.
import cluster from 'node:cluster';
import { serve } from 'scgi';

const options = JSON.parse(process.env.SCGI_TEST_OPTIONS ?? '{}');
if (cluster.isWorker) {
  console.log(JSON.stringify({ worker: process.pid, id: cluster.worker.id }));
  if (cluster.worker.id === 1) process.exit(3);
}
try {
  await serve((_h, client) => client.end('Status: 200 OK\r\n\r\nok'), { parallelism: 2, handleSignals: false, ...options });
  if (cluster.isPrimary) console.log(JSON.stringify({ ready: true }));
} catch (err) {
  console.log(JSON.stringify({ rejected: err.code ?? String(err), message: err.message, pid: process.pid }));
}
