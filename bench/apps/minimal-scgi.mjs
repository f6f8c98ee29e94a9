// The floor: the smallest SCGI server that answers correctly with net.Socket
// (no streams for the body, no limits, no timeouts, no drain). ADDRESS from env
// (a path, or host:port). What the library's own cost is measured against.
import { createServer } from 'node:net';
import { rmSync } from 'node:fs';

const response = 'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n';
const server = createServer((socket) => {
  let buf = null;
  socket.on('data', (chunk) => {
    buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
    const colon = buf.indexOf(58);
    if (colon === -1) return;
    const len = Number(buf.toString('latin1', 0, colon));
    if (buf.length < colon + len + 2) return;
    // body: CONTENT_LENGTH is the first value
    const clEnd = buf.indexOf(0, colon + 16);
    const cl = Number(buf.toString('latin1', colon + 16, clEnd));
    if (buf.length < colon + len + 2 + cl) return;
    socket.removeAllListeners('data');
    socket.resume();
    socket.end(response);
  });
  socket.on('error', () => {});
});
const a = process.env.ADDRESS;
if (a.startsWith('/')) {
  rmSync(a, { force: true });
  server.listen(a, () => console.log(JSON.stringify({ ready: a })));
} else {
  const [host, port] = a.split(':');
  server.listen(Number(port), host, () => console.log(JSON.stringify({ ready: a })));
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
