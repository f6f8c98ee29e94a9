// A test app run as its own process. Options come as JSON in SCGI_TEST_OPTIONS
// (`socket: {fd}` and 'systemd' pass through). Answers with its pid; /slow
// waits ?ms= before answering; /crash exits the process. X-Socket says which
// transport carried the request in the process that answered: 'net' when
// client.socket is a net.Socket, else 'native'.
import cluster from 'node:cluster';
import { Socket } from 'node:net';
import { serve } from 'scgi';

const options = JSON.parse(process.env.SCGI_TEST_OPTIONS ?? '{}');
const server = await serve(async (headers, client) => {
  const uri = headers.get('REQUEST_URI') ?? '/';
  if (uri.startsWith('/crash')) process.exit(3);
  if (uri.startsWith('/slow')) {
    const ms = Number(new URLSearchParams(uri.split('?')[1]).get('ms') ?? 200);
    await new Promise((r) => setTimeout(r, ms));
  }
  let body = 0;
  for await (const c of client) body += c.length;
  const socket = client.socket instanceof Socket ? 'net' : 'native';
  client.writeHead(200, { 'X-Pid': String(process.pid), 'X-Body': String(body), 'X-Socket': socket });
  client.end(`pid ${process.pid}\n`);
}, options);

if (cluster.isPrimary) {
  server.on('workerExit', (e) => console.log(JSON.stringify({ workerExit: e })));
  server.on('reload', () => console.log(JSON.stringify({ reloaded: server.workers })));
  process.on('SIGUSR2', async () => console.log(JSON.stringify({ stats: server.stats, open: await server.getConnections() })));
  console.log(JSON.stringify({ ready: server.address(), pid: process.pid, workers: server.workers ?? null, transport: server.transport }));
}
