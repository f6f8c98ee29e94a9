// The supervision test app (test/supervision.test.ts), run as its own process.
// Options come as JSON in SCGI_TEST_OPTIONS. Answers with its pid; /slow
// waits ?ms= (any route: ?wait=); /spin blocks its event loop for ever in spinForever(); /chunks
// runs ?n= synchronous chunks of ?ms= each, one per loop turn; /leak keeps
// ?kb= KiB for the life of the process; /recycle calls server.recycle();
// /detach closes the worker's IPC channel and serves on (the state of a
// worker on its way out: channel closed, process not yet exited).
// The primary prints one JSON line per event (workerExit, reload, error) and,
// on SIGUSR2, its worker records.
import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { serve } from 'scgi';

const options = JSON.parse(process.env.SCGI_TEST_OPTIONS ?? '{}');
// SCGI_TEST_BROKEN_IF: a file whose presence makes a worker fail as it starts (a broken deploy).
if (!cluster.isPrimary && process.env.SCGI_TEST_BROKEN_IF && existsSync(process.env.SCGI_TEST_BROKEN_IF)) throw new Error('broken deploy');
// SCGI_TEST_START_MS: a worker that takes this long to load before it calls serve().
if (!cluster.isPrimary && process.env.SCGI_TEST_START_MS) await new Promise((r) => setTimeout(r, Number(process.env.SCGI_TEST_START_MS)));
// SCGI_TEST_HANG_IF: a file whose presence makes a worker hang as it starts (a connection it awaits that never comes).
if (!cluster.isPrimary && process.env.SCGI_TEST_HANG_IF && existsSync(process.env.SCGI_TEST_HANG_IF)) {
  await new Promise(() => setInterval(() => {}, 1000));
}
const kept = [];
const log = (obj) => console.log(JSON.stringify(obj));
if (cluster.isPrimary) options.onError = (err) => log({ onError: { code: err.code, message: err.message } });

function spinForever() {
  for (;;) {}
}

function busyFor(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {}
}

const server = await serve(async (headers, client) => {
  const uri = headers.get('REQUEST_URI') ?? '/';
  const q = new URLSearchParams(uri.split('?')[1]);
  if (uri.startsWith('/spin')) spinForever();
  if (uri.startsWith('/slow')) await new Promise((r) => setTimeout(r, Number(q.get('ms') ?? 200)));
  if (q.has('wait')) await new Promise((r) => setTimeout(r, Number(q.get('wait'))));
  if (uri.startsWith('/chunks')) {
    for (let i = 0; i < Number(q.get('n') ?? 1); i++) {
      busyFor(Number(q.get('ms') ?? 200));
      await new Promise((r) => setImmediate(r));
    }
  }
  if (uri.startsWith('/leak')) kept.push(Buffer.alloc(Number(q.get('kb') ?? 1024) * 1024, 1));
  if (uri.startsWith('/recycle')) server.recycle();
  if (uri.startsWith('/detach')) {
    // neither node:cluster's exit at once nor runWorker's leave on 'disconnect'
    // (src/server/cluster.ts): this one serves on with its channel closed
    process.removeAllListeners('disconnect');
    process.disconnect();
  }
  client.writeHead(200, { 'X-Pid': String(process.pid) });
  client.end(`pid ${process.pid}\n`);
}, options);

if (cluster.isPrimary) {
  server.on('workerExit', (e) => log({ workerExit: e }));
  server.on('reload', () => log({ reloaded: server.workers }));
  server.on('error', (err) => log({ error: err.message }));
  process.on('SIGUSR2', () => log({ records: server.workerRecords?.() ?? null, workers: server.workers ?? null }));
  log({ ready: server.address(), pid: process.pid, workers: server.workers ?? null, transport: server.transport });
  // SCGI_TEST_WORKER_ERRORS: an 'error' on each Worker as node:cluster's own sends raise it
  // when a worker's channel closes as it is written (EPIPE), then one that is not the channel's.
  if (process.env.SCGI_TEST_WORKER_ERRORS) {
    for (const w of Object.values(cluster.workers)) w.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    Object.values(cluster.workers)[0].emit('error', Object.assign(new Error('not the channel'), { code: 'EOTHER' }));
    log({ workerErrors: 'emitted' });
  }
}
