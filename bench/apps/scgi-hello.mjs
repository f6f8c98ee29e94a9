// scgi hello. ADDRESS and PARALLELISM from env; SCGI_PARSER picks the parser.
import cluster from 'node:cluster';
// SCGI_DIST: another build of the package to compare against (bench/e2e.ts --baseline).
const { serve } = await import(process.env.SCGI_DIST || 'scgi');

const body = 'Hello, world!\n';
const server = await serve(
  (_headers, client) => {
    client.writeHead(200, { 'Content-Type': 'text/plain' });
    client.end(body);
  },
  {
    address: process.env.ADDRESS,
    parallelism: Number(process.env.PARALLELISM ?? 1),
    socketGroup: process.env.SOCKET_GROUP || undefined,
  },
);
if (cluster.isPrimary) console.log(JSON.stringify({ ready: server.address(), workers: server.workers ?? [] }));
