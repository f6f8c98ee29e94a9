// The app for test/reliability/process-faults.test.ts and bench/soak.ts, run as
// its own process. Options come as JSON in SCGI_TEST_OPTIONS. Answers with its
// pid in X-Pid; /slow?ms=N waits N ms first and, when SCGI_TEST_ARRIVALS=1,
// prints {"arrived": uri, "pid": pid} when the request reaches the handler (so
// a test knows a request is in flight without guessing a delay). /__mem answers
// process.memoryUsage() as JSON, after gc() when run with --expose-gc; /__stats
// answers server.stats; /crash throws in a timer after answering (kills the process).
import cluster from 'node:cluster';
import { serve } from 'scgi';

const options = JSON.parse(process.env.SCGI_TEST_OPTIONS ?? '{}');
const arrivals = process.env.SCGI_TEST_ARRIVALS === '1';
const server = await serve(
  async (headers, client) => {
    const uri = headers.get('REQUEST_URI') ?? '/';
    if (uri === '/__mem') {
      // run with --expose-gc for a heap reading after a full collection
      globalThis.gc?.();
      globalThis.gc?.();
      client.writeHead(200, { 'Content-Type': 'application/json' });
      client.end(JSON.stringify({ ...process.memoryUsage(), gc: typeof globalThis.gc === 'function' }));
      return;
    }
    if (uri === '/__stats') {
      client.writeHead(200, { 'Content-Type': 'application/json' });
      client.end(JSON.stringify(server.stats));
      return;
    }
    if (uri === '/crash') {
      // an app bug outside the request: an uncaught throw in a timer kills the worker
      setTimeout(() => {
        throw new Error('app bug');
      }, 10);
    }
    if (uri.startsWith('/slow')) {
      if (arrivals) process.stdout.write(`${JSON.stringify({ arrived: uri, pid: process.pid })}\n`);
      const ms = Number(new URLSearchParams(uri.split('?')[1]).get('ms') ?? 200);
      await new Promise((r) => setTimeout(r, ms));
    }
    let body = 0;
    for await (const c of client) body += c.length;
    client.writeHead(200, { 'Content-Type': 'text/plain', 'X-Pid': String(process.pid), 'X-Body': String(body) });
    client.end(`pid ${process.pid} ${uri}\n`);
  },
  { onError: () => {}, ...options },
);

if (cluster.isPrimary) {
  server.on('workerExit', (e) => console.log(JSON.stringify({ workerExit: e })));
  server.on('reload', () => console.log(JSON.stringify({ reloaded: server.workers })));
  console.log(JSON.stringify({ ready: server.address(), pid: process.pid, workers: server.workers ?? null }));
}
