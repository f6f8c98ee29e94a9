// The status endpoint at parallelism 2, served by the cluster primary from
// its worker records (src/status/primary.ts): totals are the workers' sum,
// one entry per worker, and it answers within 1 s while every worker's loop
// is blocked, with the connections waiting in the listen queue. Both
// transports; the app runs as its own process (test/apps/status-app.mjs).
import type { ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeRequest } from '../src/client/request.ts';
import { spawnApp, type AppProcess } from './apps/spawn.ts';
import { runCli } from './cli-process.ts';
import { scgiRequest, tempDir, TRANSPORTS, waitFor } from './helpers.ts';
import { parseMetrics, sampleValue, statusGet } from './status-metrics.ts';

const APP = fileURLToPath(new URL('./apps/status-app.mjs', import.meta.url));
type Ready = { ready: string | { address: string; port: number }; pid: number; workers: number[] | null; transport: string };

const children: ChildProcess[] = [];
const sockets: Socket[] = [];
let dir: { path: string; cleanup(): void } | null = null;
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await new Promise((r) => c.once('exit', r));
    }
  }
  dir?.cleanup();
  dir = null;
});

function start(options: Record<string, unknown>, env: Record<string, string> = {}): Promise<AppProcess<Ready>> {
  return spawnApp<Ready>([process.execPath, APP], { SCGI_TEST_OPTIONS: JSON.stringify({ ...options }), ...env }, children);
}

async function doc(status: string, timeout = 1000) {
  const r = await statusGet(status, '/status', {}, timeout);
  expect(r.status).toBe(200);
  return JSON.parse(r.body);
}

describe.each(TRANSPORTS)('status endpoint, parallelism 2 (%s)', (transport) => {
  it('totals are the sum of the workers after a known number of requests; /metrics per pid', async () => {
    dir = tempDir();
    const address = join(dir.path, 'app.sock');
    const status = join(dir.path, 'status.sock');
    const app = await start({ address, parallelism: 2, transport, statusAddress: status });
    const pids = app.ready.workers!;
    expect(pids).toHaveLength(2);
    await Promise.all(Array.from({ length: 20 }, (_, i) => scgiRequest({ path: address }, { uri: `/r${i}` })));
    // Each worker reports once a second (the first time a second after it listens).
    await waitFor(
      async () => {
        const d = await doc(status);
        return d.totals.requests === 20 && d.workers.every((w: { rss: number }) => w.rss > 0);
      },
      5000,
      100,
    );
    const d = await doc(status);
    expect(d.server).toMatchObject({ pid: app.ready.pid, parallelism: 2, transport, address: `unix:${address}` });
    expect(d.workers.map((w: { pid: number }) => w.pid).sort()).toEqual([...pids].sort());
    expect(d.workers.reduce((n: number, w: { requests: number }) => n + w.requests, 0)).toBe(20);
    expect(d.totals.requests).toBe(20);
    for (const w of d.workers) {
      expect(w.state).toBe('idle');
      expect(w.rss).toBeGreaterThan(0);
      expect(w.lastHeartbeatAgeMs).toBeLessThan(3000);
      expect(w.replacements).toEqual({ crash: 0, timeout: 0, recycle: 0, reload: 0, shutdown: 0 });
    }
    const m = parseMetrics((await statusGet(status, '/metrics')).body, 'prometheus');
    expect(sampleValue(m, 'scgi_requests', 'scgi_requests_total')).toBe(20);
    for (const pid of pids) {
      expect(sampleValue(m, 'scgi_worker_resident_memory_bytes', 'scgi_worker_resident_memory_bytes', { pid: String(pid) })).toBeGreaterThan(0);
    }
    expect(sampleValue(m, 'scgi_workers', 'scgi_workers', { state: 'idle' })).toBe(2);
    // The histogram is the workers' (each heartbeat carries its own).
    await waitFor(
      async () => {
        const mm = parseMetrics((await statusGet(status, '/metrics')).body, 'prometheus');
        return sampleValue(mm, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_count') === 20;
      },
      5000,
      200,
    );
    // scgi status: one row per worker.
    const table = runCli(['status', status]);
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/requests 20, in progress 0/);
    for (const pid of pids) expect(table.stdout).toMatch(new RegExp(`^${pid} +idle +\\d+ +0 +`, 'm'));
  }, 30_000);

  it("registerMetrics in the primary (no statusAddress): the cluster's numbers in the app's prom-client registry", async () => {
    dir = tempDir();
    const address = join(dir.path, 'app.sock');
    // slowRequestThreshold gives the workers a monitor, so their heartbeats carry the histogram.
    const app = await start({ address, parallelism: 2, transport, slowRequestThreshold: 60_000 }, { SCGI_TEST_PROM: '1' });
    await Promise.all(Array.from({ length: 10 }, () => scgiRequest({ path: address }, { uri: '/' })));
    const scrape = async () => {
      const before = app.lines.length;
      app.child.kill('SIGUSR2');
      await waitFor(() => app.lines.slice(before).some((l) => 'metrics' in l), 3000);
      return parseMetrics(app.lines.slice(before).find((l) => 'metrics' in l)!.metrics as string, 'prometheus');
    };
    await waitFor(async () => sampleValue(await scrape(), 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_count') === 10, 6000, 200);
    const m = await scrape();
    expect(sampleValue(m, 'scgi_requests', 'scgi_requests_total')).toBe(10);
    for (const pid of app.ready.workers!) {
      expect(sampleValue(m, 'scgi_worker_resident_memory_bytes', 'scgi_worker_resident_memory_bytes', { pid: String(pid) })).toBeGreaterThan(0);
    }
  }, 30_000);

  it('answers within 1 s while every worker is blocked: both unresponsive, the oldest request named, connections waiting in the listen queue', async () => {
    dir = tempDir();
    const status = join(dir.path, 'status.sock');
    const app = await start({ address: '127.0.0.1:0', parallelism: 2, transport, statusAddress: status });
    const { port } = app.ready.ready as { port: number };
    const blocking = () => new Set(app.lines.filter((l) => 'blocking' in l).map((l) => l.blocking));
    const send = (uri: string) => {
      const s = connect({ host: '127.0.0.1', port });
      sockets.push(s);
      s.on('error', () => {});
      s.write(encodeRequest({ uri }));
    };
    // Each waits 1.5 s first (a heartbeat lists it), then blocks its worker's loop.
    send('/block?wait=1500&ms=7000');
    await waitFor(() => blocking().size === 1, 5000);
    // The blocked worker cannot accept: the other one takes this.
    send('/block?wait=1500&ms=7000');
    await waitFor(() => blocking().size === 2, 5000);
    for (let i = 0; i < 3; i++) send(`/waiting${i}`);
    // Each status request must answer within 1 s (the workers' loops are blocked; the primary's is not).
    await waitFor(async () => (await doc(status, 1000)).listenQueue >= 3, 3000, 100);
    await waitFor(async () => (await doc(status, 1000)).workers.every((w: { state: string }) => w.state === 'unresponsive'), 4000, 100);
    const d = await doc(status, 1000);
    expect(d.listenQueue).toBe(3);
    expect(d.workers.map((w: { pid: number }) => w.pid).sort()).toEqual([...blocking()].sort());
    for (const w of d.workers) {
      expect(w.lastHeartbeatAgeMs).toBeGreaterThan(2000);
      expect(w.oldestRequest).toMatchObject({ method: 'GET', uri: '/block?wait=1500&ms=7000' });
      expect(w.oldestRequest.ageMs).toBeGreaterThan(2000);
    }
    const m = parseMetrics((await statusGet(status, '/metrics', {}, 1000)).body, 'prometheus');
    expect(sampleValue(m, 'scgi_listen_queue', 'scgi_listen_queue')).toBe(3);
    expect(sampleValue(m, 'scgi_workers', 'scgi_workers', { state: 'unresponsive' })).toBe(2);
  }, 30_000);
});
