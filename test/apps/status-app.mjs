// A test app for the status endpoint, run as its own process (options as
// JSON in SCGI_TEST_OPTIONS). / answers with its pid; /block?wait=&ms=
// waits `wait` ms (a heartbeat reports it in progress), prints {"blocking":
// pid} and then blocks its event loop for `ms` (a stuck worker).
import cluster from 'node:cluster';
import { registerMetrics, serve } from 'scgi';

const options = JSON.parse(process.env.SCGI_TEST_OPTIONS ?? '{}');
const server = await serve(async (headers, client) => {
  const uri = headers.get('REQUEST_URI') ?? '/';
  if (uri.startsWith('/block')) {
    const q = new URLSearchParams(uri.split('?')[1]);
    const ms = Number(q.get('ms') ?? 1000);
    await new Promise((r) => setTimeout(r, Number(q.get('wait') ?? 0)));
    console.log(JSON.stringify({ blocking: process.pid }));
    const until = Date.now() + ms;
    while (Date.now() < until);
  }
  client.writeHead(200, { 'Content-Type': 'text/plain', 'X-Pid': String(process.pid) });
  client.end(`pid ${process.pid}\n`);
}, options);

if (cluster.isPrimary) {
  if (process.env.SCGI_TEST_PROM === '1') {
    // The primary's metrics in a prom-client registry of the app's own; SIGUSR2 prints them.
    const { Registry } = await import('prom-client');
    const registry = new Registry();
    registerMetrics(registry, server);
    process.on('SIGUSR2', async () => console.log(JSON.stringify({ metrics: await registry.metrics() })));
  }
  console.log(JSON.stringify({ ready: server.address(), pid: process.pid, workers: server.workers ?? null, transport: server.transport }));
}
