// The native transport engine alone (dist/transport/native-engine.js), with
// the same response as the other hello apps and no request lifecycle on top:
// what the addon's accept/read/parse/write path costs. ADDRESS from env (a
// path, or host:port).
import { rmSync } from 'node:fs';
import { NativeEngine } from '../../dist/transport/native-engine.js';

const response = Buffer.from('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n', 'latin1');
const engine = new NativeEngine(
  {
    maxHeaderSize: 64 * 1024,
    maxHeadersCount: 1000,
    strict: false,
    maxConnections: Infinity,
    headerTimeout: 10_000,
    drainTimeout: 5_000,
    maxDrainSize: 16 * 1024 * 1024,
    writeHighWaterMark: 64 * 1024,
    allowHalfOpen: false,
    sweepInterval: 1000,
    overloadResponse: Buffer.from('Status: 503 Service Unavailable\r\n\r\n'),
  },
  {
    onRequest(id) {
      engine.respond(id, response);
    },
    onData() {},
    onReject() {},
    onClose() {},
    onDrain() {},
    onAccepted() {},
  },
);
const a = process.env.ADDRESS;
if (a.startsWith('/')) {
  rmSync(a, { force: true });
  engine.listenUnix(a);
} else {
  const [host, port] = a.split(':');
  engine.listenTcp(host, Number(port));
}
console.log(JSON.stringify({ ready: a }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
