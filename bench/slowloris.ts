/**
 * Slowloris: latency of normal requests with and without an attack.
 *
 * The server (test/apps/reliability-app.mjs, parallelism 1, unix socket,
 * headerTimeout H) runs in a child process; the attacker runs in another child
 * process and keeps CONNS connections open at all times, half sending
 * nothing, half one header byte a second, reopening each as soon as the server
 * closes it at headerTimeout. This process sends normal requests at a fixed
 * rate (open loop: one every 1000/RATE ms, whatever the previous ones do) and
 * records each one's latency, first for SECONDS without the attack, then for
 * SECONDS with it. Target: p99 under attack < 50 ms.
 *
 *   npm run build   # the app imports the built package
 *   node --import ./scripts/ts-loader.mjs bench/slowloris.ts [--seconds 10] [--rate 200] [--conns 500] [--header-timeout 1000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeRequest, request } from '../src/client/request.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '200' },
    conns: { type: 'string', default: '500' },
    'header-timeout': { type: 'string', default: '1000' },
    attacker: { type: 'string' }, // internal: run as the attacker against this socket
  },
});
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const CONNS = Number(values.conns);
const HEADER_TIMEOUT = Number(values['header-timeout']);

if (values.attacker !== undefined) {
  // ---- the attacker process ----
  const path = values.attacker;
  const trickle = encodeRequest({ uri: '/slowloris' });
  let open = 0;
  let reopened = 0;
  let reported = false;
  const one = (k: number): void => {
    const s: Socket = connect({ path });
    let timer: NodeJS.Timeout | null = null;
    s.on('error', () => {});
    s.on('connect', () => {
      open++;
      if (!reported && open >= CONNS) {
        reported = true;
        process.stdout.write('open\n');
      }
      if (k % 2 === 1) {
        let i = 0;
        timer = setInterval(() => {
          if (i < trickle.length) s.write(trickle.subarray(i, ++i));
        }, 1000);
      }
    });
    s.on('close', () => {
      if (timer !== null) clearInterval(timer);
      open--;
      reopened++;
      setImmediate(() => one(k)); // keep the pressure on
    });
  };
  let k = 0;
  const ramp = setInterval(() => {
    for (let j = 0; j < 50 && k < CONNS; j++) one(k++);
    if (k >= CONNS) clearInterval(ramp);
  }, 10);
  process.on('SIGTERM', () => {
    process.stdout.write(`${JSON.stringify({ reopened })}\n`);
    process.exit(0);
  });
} else {
  await main();
}

async function main(): Promise<void> {
  const APP = fileURLToPath(new URL('../test/apps/reliability-app.mjs', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'scgi-slowloris-'));
  const sock = join(dir, 'app.sock');
  const server = spawn(process.execPath, [APP], {
    env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify({ address: sock, headerTimeout: HEADER_TIMEOUT }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await lineMatching(server, (l) => l.includes('"ready"'));

  const warm = await phase(sock, 2);
  void warm;
  const baseline = await phase(sock, SECONDS);

  const attacker = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--attacker', sock, '--conns', String(CONNS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await lineMatching(attacker, (l) => l === 'open');
  const attacked = await phase(sock, SECONDS);
  attacker.kill('SIGTERM');
  const reopened = JSON.parse(await lineMatching(attacker, (l) => l.startsWith('{'))).reopened as number;

  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dir, { recursive: true, force: true });

  const report = {
    node: process.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    loadavg: loadavg().map((x) => Math.round(x * 10) / 10),
    rate: RATE,
    seconds: SECONDS,
    conns: CONNS,
    headerTimeout: HEADER_TIMEOUT,
    attackConnectionsClosedByServer: reopened,
    baseline,
    attacked,
    verdict: attacked.failures === 0 && attacked.p99 < 50 ? 'PASS' : 'FAIL',
  };
  console.log(JSON.stringify(report, null, 2));
  process.exit(report.verdict === 'PASS' ? 0 : 1);
}

/** Send RATE requests a second for `seconds`; latency percentiles in ms. */
async function phase(sock: string, seconds: number) {
  const latencies: number[] = [];
  let failures = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const interval = 1000 / RATE;
  for (let i = 0; performance.now() - start < seconds * 1000; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t0 = performance.now();
    pending.push(
      request(sock, { uri: `/normal?i=${i}`, timeout: 10_000 }).then(
        (res) => {
          if (res.status === 200) latencies.push(performance.now() - t0);
          else failures++;
        },
        () => void failures++,
      ),
    );
  }
  await Promise.all(pending);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]! * 100) / 100;
  return { requests: latencies.length + failures, failures, p50: pct(50), p90: pct(90), p99: pct(99), max: pct(100) };
}

function lineMatching(child: ChildProcess, match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (match(line)) {
        rl.close();
        resolve(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
  });
}
