// Supervision of cluster workers (src/cluster.ts, src/supervision/): the
// heartbeat and the primary's worker records, on both transports (the
// primary forks native and net workers differently).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnApp, type AppProcess } from './apps/spawn.ts';
import { scgiRequest, tempDir, TRANSPORTS, waitFor, type Target } from './helpers.ts';

const APP = fileURLToPath(new URL('./apps/supervised-app.mjs', import.meta.url));
const dir = tempDir();
afterAll(() => dir.cleanup());

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

type Ready = { ready: string | { address: string; port: number }; pid: number; workers: number[] | null; transport: 'native' | 'net' };
type App = AppProcess<Ready>;

interface Rec {
  pid: number;
  state: string;
  startTime: number;
  lastHeartbeat: number | null;
  heartbeat: {
    scgi: string;
    stats: { requests: number };
    open: number;
    inProgress: number;
    requests: { method: string; uri: string; start: number }[];
    rss: number;
    heapUsed: number;
    elu: number;
    time: number;
  } | null;
  replacements: Record<string, number>;
}

function startApp(options: object, env: Record<string, string> = {}): Promise<App> {
  return spawnApp([process.execPath, APP], { SCGI_TEST_OPTIONS: JSON.stringify(options), ...env }, children);
}

function targetOf(app: App): Target {
  const r = app.ready.ready;
  return typeof r === 'string' ? { path: r } : { host: '127.0.0.1', port: r.port };
}

/** The primary's worker records, now (SIGUSR2 makes the app print them). */
async function records(app: App): Promise<Rec[]> {
  const before = app.lines.length;
  app.child.kill('SIGUSR2');
  await waitFor(() => app.lines.slice(before).some((l) => 'records' in l));
  return app.lines.slice(before).find((l) => 'records' in l)!.records as Rec[];
}

for (const transport of TRANSPORTS) {
  describe(`worker heartbeat and records (${transport} workers)`, () => {
    it('each worker reports its requests in progress, memory and loop use every second; the primary keeps one record per worker', async () => {
      const path = join(dir.path, `hb-${transport}.sock`);
      const app = await startApp({ address: path, parallelism: 2, transport });
      expect(app.ready.transport).toBe(transport);
      const target = targetOf(app);
      const t0 = Date.now();
      const slow = scgiRequest(target, { uri: '/slow?ms=3000' });
      let recs: Rec[] = [];
      // heartbeats come unconditionally: two records, each with a heartbeat, one busy with the slow request
      await waitFor(
        async () => {
          recs = await records(app);
          return recs.length === 2 && recs.every((r) => r.heartbeat !== null) && recs.some((r) => r.state === 'busy');
        },
        5000,
        200,
      );
      expect(recs.map((r) => r.pid).sort()).toEqual([...app.ready.workers!].sort());
      const busy = recs.find((r) => r.state === 'busy')!;
      const idle = recs.find((r) => r.state !== 'busy')!;
      expect(idle.state).toBe('idle');
      expect(busy.heartbeat!.scgi).toBe('heartbeat');
      expect(busy.heartbeat!.inProgress).toBe(1);
      expect(busy.heartbeat!.requests).toHaveLength(1);
      const [req] = busy.heartbeat!.requests;
      expect(req!.method).toBe('GET');
      expect(req!.uri).toBe('/slow?ms=3000');
      expect(req!.start).toBeGreaterThanOrEqual(t0 - 50);
      expect(req!.start).toBeLessThanOrEqual(Date.now());
      for (const r of recs) {
        expect(r.replacements).toEqual({ crash: 0, timeout: 0, recycle: 0, reload: 0, shutdown: 0 });
        expect(r.heartbeat!.rss).toBeGreaterThan(1024 * 1024);
        expect(r.heartbeat!.heapUsed).toBeGreaterThan(0);
        expect(r.heartbeat!.elu).toBeGreaterThanOrEqual(0);
        expect(r.heartbeat!.elu).toBeLessThanOrEqual(1);
        expect(r.lastHeartbeat).toBeGreaterThanOrEqual(r.startTime);
      }
      expect(idle.heartbeat!.inProgress).toBe(0);
      // heartbeats keep coming while nothing changes
      const seen = idle.heartbeat!.time;
      await waitFor(async () => (await records(app)).find((r) => r.pid === idle.pid)!.heartbeat!.time > seen, 3000, 200);
      expect((await slow).status).toBe(200);
      // a crashed worker's replacement continues its line: one crash counted
      process.kill(idle.pid, 'SIGKILL');
      await waitFor(
        async () => {
          recs = await records(app);
          return recs.length === 2 && !recs.some((r) => r.pid === idle.pid) && recs.every((r) => r.state === 'idle');
        },
        10_000,
        200,
      );
      const replacement = recs.find((r) => r.pid !== busy.pid)!;
      expect(replacement.replacements).toEqual({ crash: 1, timeout: 0, recycle: 0, reload: 0, shutdown: 0 });
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    });
  });
}
