/**
 * Soak: N requests (default 1,000,000) through the SCGI client, in this
 * process, against the server in a child process (test/apps/reliability-app.mjs,
 * parallelism 1, unix socket), CONCURRENCY at a time. Samples the server's RSS
 * and open fds (/proc/<pid>) and its heap after gc (GET /__mem, the child runs
 * with --expose-gc) every 100k requests; the check is RSS(N) within 10 % of
 * RSS(100k) and no fd growth. Bounded by --max-seconds (default 600).
 *
 *   npm run build   # the app imports the built package
 *   node --import ./scripts/ts-loader.mjs bench/soak.ts [--requests 1000000] [--concurrency 32] [--max-seconds 600]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from '../src/client/request.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000000' },
    concurrency: { type: 'string', default: '32' },
    'sample-every': { type: 'string', default: '100000' },
    'max-seconds': { type: 'string', default: '600' },
  },
});
const TOTAL = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const EVERY = Number(values['sample-every']);
const MAX_MS = Number(values['max-seconds']) * 1000;

const APP = fileURLToPath(new URL('../test/apps/reliability-app.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'scgi-soak-'));
const sock = join(dir, 'soak.sock');

// A fixed young generation (semi-space 16 MB), as in test/reliability/soak.test.ts:
// V8 grows it in steps, and on the native transport (which allocates less per
// request) the steps came after the 100k sample, reading as RSS growth.
const child = spawn(process.execPath, ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16', APP], {
  env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify({ address: sock }) },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const ready = await new Promise<{ pid: number }>((resolve, reject) => {
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line);
    if ('ready' in msg) resolve(msg);
  });
  child.once('exit', (code) => reject(new Error(`app exited ${code}`)));
});
const pid = ready.pid;

const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const fds = () => readdirSync(`/proc/${pid}/fd`).length;
const heap = async () => JSON.parse((await request(sock, { uri: '/__mem' })).body.toString()) as { heapUsed: number; external: number; arrayBuffers: number };

interface Sample {
  requests: number;
  seconds: number;
  rssMB: number;
  fds: number;
  heapMB: number;
  reqPerSec: number;
}
const samples: Sample[] = [];
const MB = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;

const started = Date.now();
let done = 0;
let failures = 0;
let lastSampleAt = started;
let lastSampleDone = 0;
let timedOut = false;

/** Between rounds nothing is in flight, so the fd count is the idle one. */
async function sample(): Promise<void> {
  const h = await heap();
  const now = Date.now();
  const s = {
    requests: done,
    seconds: Math.round((now - started) / 1000),
    rssMB: MB(rss()),
    fds: fds(),
    heapMB: MB(h.heapUsed),
    reqPerSec: Math.round(((done - lastSampleDone) * 1000) / (now - lastSampleAt)),
  };
  lastSampleAt = now;
  lastSampleDone = done;
  samples.push(s);
  console.log(JSON.stringify(s));
}

/** One round of `count` requests, CONCURRENCY at a time. */
async function round(count: number): Promise<void> {
  let issued = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, k) => {
      while (issued < count) {
        if (Date.now() - started > MAX_MS) {
          timedOut = true;
          return;
        }
        const i = done + issued++;
        try {
          const res = await request(sock, { uri: `/soak/${k}?i=${i}`, body: i % 10 === 0 ? 'x'.repeat(100) : undefined });
          if (res.status !== 200) failures++;
        } catch {
          failures++;
        }
      }
    }),
  );
  done += issued;
}

while (done < TOTAL && !timedOut) {
  await round(Math.min(EVERY, TOTAL - done));
  await sample();
}
const elapsed = (Date.now() - started) / 1000;
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
rmSync(dir, { recursive: true, force: true });

const first = samples.find((s) => s.requests >= EVERY);
const last = samples.at(-1);
const rssGrowth = first && last ? (last.rssMB - first.rssMB) / first.rssMB : NaN;
const fdGrowth = first && last ? last.fds - first.fds : NaN;
const ok = !timedOut && failures === 0 && rssGrowth <= 0.1 && fdGrowth <= 0;
console.log(
  JSON.stringify({
    requests: done,
    failures,
    timedOut,
    seconds: Math.round(elapsed),
    reqPerSec: Math.round(done / elapsed),
    concurrency: CONCURRENCY,
    rssAtFirstSampleMB: first?.rssMB,
    rssAtEndMB: last?.rssMB,
    rssGrowthPct: Math.round(rssGrowth * 1000) / 10,
    fdsAtFirstSample: first?.fds,
    fdsAtEnd: last?.fds,
    heapAtFirstSampleMB: first?.heapMB,
    heapAtEndMB: last?.heapMB,
    node: process.version,
    cpu: cpus()[0]?.model,
    verdict: ok ? 'PASS' : 'FAIL',
  }),
);
process.exit(ok ? 0 : 1);
