// An app that runs its own node:cluster (as PM2's cluster mode does): the
// primary forks two workers, each calls serve() on the same address with no
// transport option. Each worker prints {"worker": pid, "transport": ...} once
// it listens, or {"worker": pid, "error": code}. Options (address...) come as
// JSON in SCGI_TEST_OPTIONS.
import cluster from 'node:cluster';
import { serve } from 'scgi';

if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const options = JSON.parse(process.env.SCGI_TEST_OPTIONS ?? '{}');
  try {
    const server = await serve((_headers, client) => {
      client.writeHead(200, { 'X-Pid': String(process.pid) });
      client.end(`pid ${process.pid}\n`);
    }, options);
    console.log(JSON.stringify({ worker: process.pid, transport: server.transport }));
  } catch (err) {
    console.log(JSON.stringify({ worker: process.pid, error: err.code }));
    process.exit(1);
  }
}
