// In-process cost of scgi/http: the Express hello app of bench/apps through
// fromNodeListener, and a raw handler, each driven by inject() (the server's
// connection lifecycle over an in-memory transport: no sockets, no nginx, so
// far less noise than bench/e2e.ts), 16 requests in flight, interleaved rounds.
// With BASELINE=DIST_DIR, the same rows for another build, in the same process.
//   npm run build && BASELINE=/path/to/other/dist node bench/http-adapter.mjs [requests] [rounds]
import express from 'express';

const N = Number(process.argv[2] ?? 20000);
const ROUNDS = Number(process.argv[3] ?? 5);
const builds = [['this build', new URL('../dist', import.meta.url).pathname]];
if (process.env.BASELINE) builds.push(['baseline', process.env.BASELINE]);

const rows = [];
for (const [label, dist] of builds) {
  const { inject } = await import(`${dist}/index.js`);
  const { fromNodeListener } = await import(`${dist}/adapters/http.js`);
  const app = express();
  app.get('/', (_req, res) => res.send('Hello, World!\n'));
  const raw = (_headers, client) => {
    client.writeHead(200, { 'Content-Type': 'text/plain' });
    client.end('Hello, World!\n');
  };
  rows.push({ name: `${label}: raw handler`, handler: raw, inject, samples: [] });
  rows.push({ name: `${label}: express scgi/http`, handler: fromNodeListener(app), inject, samples: [] });
}

async function run(row, n) {
  let next = 0;
  const worker = async () => {
    while (next++ < n) {
      const r = await row.inject(row.handler, { uri: '/' });
      if (r.status !== 200) throw new Error(`${row.name}: status ${r.status}`);
    }
  };
  const t = process.cpuUsage();
  await Promise.all(Array.from({ length: 16 }, worker));
  const u = process.cpuUsage(t);
  return (u.user + u.system) / n;
}

for (const row of rows) await run(row, 2000); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const row of rows) row.samples.push(await run(row, N));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`${N} requests × ${ROUNDS} interleaved rounds per row, Node ${process.version}; CPU µs/req (median, min–max)\n`);
console.log('| row | CPU µs/req | min–max |\n|---|---:|---:|');
for (const row of rows) {
  console.log(`| ${row.name} | ${median(row.samples).toFixed(1)} | ${Math.min(...row.samples).toFixed(1)}–${Math.max(...row.samples).toFixed(1)} |`);
}
// On a shared machine the minimum is the steadier estimate of what the code
// itself costs (other load only ever adds); both are shown.
console.log('\n| build | added by scgi/http + Express over the raw handler, µs/req (medians) | (minimums) |\n|---|---:|---:|');
for (let i = 0; i < rows.length; i += 2) {
  const [raw, app] = [rows[i].samples, rows[i + 1].samples];
  console.log(`| ${builds[i / 2][0]} | ${(median(app) - median(raw)).toFixed(1)} | ${(Math.min(...app) - Math.min(...raw)).toFixed(1)} |`);
}
