// Supervision of cluster workers (src/server/cluster.ts, src/supervision/): the
// heartbeat and the primary's worker records, on both transports (the
// primary forks native and net workers differently).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnApp, type AppProcess } from './apps/spawn.ts';
import { request } from '../src/client/request.ts';
import { serve } from '../src/server/serve.ts';
import { normalizeOptions } from '../src/options.ts';
import { tempDir, TRANSPORTS, waitFor } from './helpers.ts';

const APP = fileURLToPath(new URL('./apps/supervised-app.mjs', import.meta.url));
const dir = tempDir();
afterAll(() => dir.cleanup());

const children: ChildProcess[] = [];
/** Worker pids the tests saw: killed after each test too (a stuck worker outlives a killed primary). */
const workerPids = new Set<number>();
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of workerPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  workerPids.clear();
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

async function startApp(options: object, env: Record<string, string> = {}): Promise<App> {
  const app = await spawnApp<Ready>([process.execPath, APP], { SCGI_TEST_OPTIONS: JSON.stringify(options), ...env }, children);
  for (const pid of app.ready.workers ?? []) workerPids.add(pid);
  return app;
}

/** Where the app listens, as `request` (src/client/request.ts) takes it. */
function targetOf(app: App): string {
  const r = app.ready.ready;
  return typeof r === 'string' ? r : `127.0.0.1:${r.port}`;
}

type Target = string;

/** One request; the status, or the error's code if it failed. */
async function ask(target: Target, uri: string, timeout = 10_000): Promise<number | string> {
  try {
    return (await request(target, { uri, timeout })).status;
  } catch (err) {
    return String((err as { code?: string }).code ?? err);
  }
}

/** The primary's worker records, now (SIGUSR2 makes the app print them). */
async function records(app: App): Promise<Rec[]> {
  const before = app.lines.length;
  app.child.kill('SIGUSR2');
  await waitFor(() => app.lines.slice(before).some((l) => 'records' in l));
  const recs = app.lines.slice(before).find((l) => 'records' in l)!.records as Rec[];
  for (const r of recs) workerPids.add(r.pid);
  return recs;
}

for (const transport of TRANSPORTS) {
  describe(`worker heartbeat and records (${transport} workers)`, () => {
    it('each worker reports its requests in progress, memory and loop use every second; the primary keeps one record per worker', async () => {
      const path = join(dir.path, `hb-${transport}.sock`);
      const app = await startApp({ address: path, parallelism: 2, transport });
      expect(app.ready.transport).toBe(transport);
      const target = targetOf(app);
      // the first heartbeat comes as the worker starts serving (not a second later)
      const ready = Date.now();
      let first: Rec[] = [];
      await waitFor(async () => (first = await records(app)).every((r) => r.heartbeat !== null), 700, 20).catch(() => {});
      expect(first.map((r) => r.heartbeat?.scgi)).toEqual(['heartbeat', 'heartbeat']);
      expect(Date.now() - ready).toBeLessThan(900);
      const t0 = Date.now();
      const slow = ask(target, '/slow?ms=3000');
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
      expect(await slow).toBe(200);
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

/** Send a request that blocks the worker that takes it; its answer never comes (the worker is killed). */
function spin(target: Target): void {
  void ask(target, '/spin?x=1', 20_000);
}

/** Poll `/` until it answers 200; resolves with when it did. */
async function answersAgain(target: Target, within: number): Promise<number> {
  const until = Date.now() + within;
  while (Date.now() < until) {
    if ((await ask(target, '/', 500)) === 200) return Date.now();
  }
  throw new Error(`no answer within ${within} ms`);
}

const WORKER_TIMEOUT = 2000;

for (const transport of TRANSPORTS) {
  describe(`workerTimeout (${transport} workers)`, () => {
    it('two workers stuck in for (;;) {}: each is reported (pid, request, stack) and killed, the service answers again within workerTimeout + 2 s', async () => {
      const path = join(dir.path, `stuck-${transport}.sock`);
      const app = await startApp({ address: path, parallelism: 2, transport, workerTimeout: WORKER_TIMEOUT });
      const target = targetOf(app);
      // wait for both workers' first heartbeat: from then on a silence is the loop's
      await waitFor(async () => (await records(app)).filter((r) => r.heartbeat !== null).length === 2, 5000, 100);
      spin(target);
      await new Promise((r) => setTimeout(r, 300));
      spin(target);
      // both blocked: nothing answers
      await new Promise((r) => setTimeout(r, 300));
      const blocked = Date.now();
      expect(await ask(target, '/', 300)).toBe('ERR_SCGI_RESPONSE_TIMEOUT');
      const back = await answersAgain(target, WORKER_TIMEOUT + 2000);
      expect(back - blocked).toBeLessThanOrEqual(WORKER_TIMEOUT + 2000);
      await waitFor(() => app.lines.filter((l) => 'workerExit' in l).length >= 2, 10_000);
      const exits = app.lines.filter((l) => 'workerExit' in l).map((l) => l.workerExit as { pid: number; signal: string; reason: string });
      expect(exits.map((e) => e.reason)).toEqual(['timeout', 'timeout']);
      expect(exits.map((e) => e.pid).sort()).toEqual([...app.ready.workers!].sort());
      for (const e of exits) expect(e.signal).toBe('SIGKILL');
      // one report per worker through onError, naming the pid, the request and the blocked function
      const reports = app.lines.filter((l) => 'onError' in l).map((l) => l.onError as { code: string; message: string });
      expect(reports).toHaveLength(2);
      for (const [i, r] of reports.entries()) {
        expect(r.code).toBe('ERR_SCGI_WORKER_TIMEOUT');
        expect(r.message).toContain(`worker ${exits[i]!.pid}`);
        expect(r.message).toMatch(/in progress: GET \/spin\?x=1 \(\d+\.\d s\)/);
        expect(r.message).toMatch(/at spinForever \(.*supervised-app\.mjs:\d+:\d+\)/);
      }
      // replaced at once, not as crashes: two live workers, each continuing a line with one timeout
      await waitFor(async () => (await records(app)).filter((r) => r.state === 'idle').length === 2, 5000, 100);
      const recs = await records(app);
      for (const r of recs) expect(r.replacements).toEqual({ crash: 0, timeout: 1, recycle: 0, reload: 0, shutdown: 0 });
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    });

    it('a worker busy in 200 ms synchronous chunks under load for 10 s is never killed', async () => {
      const path = join(dir.path, `chunks-${transport}.sock`);
      const app = await startApp({ address: path, parallelism: 2, transport, workerTimeout: WORKER_TIMEOUT });
      const target = targetOf(app);
      const until = Date.now() + 10_000;
      const failures: string[] = [];
      let done = 0;
      // two long requests that keep each worker's loop busy 200 ms at a time, and short ones in between
      const long = async () => {
        while (Date.now() < until) {
          const status = await ask(target, '/chunks?n=10&ms=200', 20_000);
          if (status !== 200) failures.push(String(status));
          else done++;
        }
      };
      const short = async () => {
        while (Date.now() < until) {
          const status = await ask(target, '/', 20_000);
          if (status !== 200) failures.push(String(status));
          else done++;
        }
      };
      await Promise.all([long(), long(), short(), short()]);
      expect(failures).toEqual([]);
      expect(done).toBeGreaterThan(20);
      expect(app.lines.filter((l) => 'workerExit' in l || 'onError' in l)).toEqual([]);
      const recs = await records(app);
      expect(recs.map((r) => r.pid).sort()).toEqual([...app.ready.workers!].sort());
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    }, 40_000);
  });
}

for (const transport of TRANSPORTS) {
  describe(`workerTimeout at parallelism 1 (${transport})`, () => {
    it('a loop stuck in for (;;) {}: the watchdog thread reports the request and the stack on stderr and kills the process (for its supervisor to restart)', async () => {
      const path = join(dir.path, `p1-${transport}.sock`);
      const child = spawn(process.execPath, [APP], {
        env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify({ address: path, transport, workerTimeout: WORKER_TIMEOUT }) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
      await waitFor(() => stdout.includes('"ready"'), 10_000);
      expect(await ask(path, '/slow?ms=10')).toBe(200);
      // a loop that turns (2 s of 200 ms chunks, longer than workerTimeout) is left alone
      expect(await ask(path, '/chunks?n=12&ms=200', 20_000)).toBe(200);
      const t0 = Date.now();
      spin(path);
      const exit = await exited;
      expect(Date.now() - t0).toBeLessThanOrEqual(WORKER_TIMEOUT + 2000);
      expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
      expect(stderr).toContain(`[ERR_SCGI_WORKER_TIMEOUT] process ${child.pid}`);
      expect(stderr).toMatch(/in progress: GET \/spin\?x=1 \(\d+\.\d s\)/);
      expect(stderr).toMatch(/at spinForever \(.*supervised-app\.mjs:\d+:\d+\)/);
      // the next start takes over the stale socket file
      const again = await startApp({ address: path, transport, workerTimeout: WORKER_TIMEOUT });
      expect(await ask(path, '/')).toBe(200);
      again.child.kill('SIGTERM');
      expect(await again.exited).toBe(0);
    });
  });
}

/** `clients` loops sending `uri(i)` until `total` requests are done; the failures (status or error code). */
async function load(target: Target, total: number, clients: number, uri: (i: number) => string): Promise<{ failures: string[]; pids: Set<number> }> {
  let next = 0;
  const failures: string[] = [];
  const pids = new Set<number>();
  const client = async () => {
    while (next < total) {
      const i = next++;
      try {
        const res = await request(target, { uri: uri(i), timeout: 20_000 });
        if (res.status !== 200) failures.push(`${i}: ${res.status}`);
        else pids.add(Number(res.headers['x-pid']));
      } catch (err) {
        failures.push(`${i}: ${(err as { code?: string }).code ?? err}`);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return { failures, pids };
}

const exitsOf = (app: App) => app.lines.filter((l) => 'workerExit' in l).map((l) => l.workerExit as { pid: number; reason: string; code: number });

for (const transport of TRANSPORTS) {
  describe(`recycling (${transport} workers)`, () => {
    it('maxRequests 100 at parallelism 2: 1000 requests under steady load, none fails, workers recycled (not crashes)', async () => {
      const path = join(dir.path, `maxreq-${transport}.sock`);
      const app = await startApp({ address: path, parallelism: 2, transport, maxRequests: 100, maxRequestsJitter: 10 });
      const { failures, pids } = await load(path, 1000, 8, (i) => `/slow?ms=20&i=${i}`);
      expect(failures).toEqual([]);
      // replacements answered during the load (a worker serves on until its replacement listens, so
      // under this load each serves more than 100)
      expect(pids.size).toBeGreaterThanOrEqual(3);
      await waitFor(() => exitsOf(app).length >= 2, 10_000);
      const exits = exitsOf(app);
      expect(new Set(exits.map((e) => e.reason))).toEqual(new Set(['recycle']));
      for (const e of exits) expect(e.code).toBe(0);
      await waitFor(async () => (await records(app)).filter((r) => r.state === 'idle').length === 2, 5000, 100);
      for (const r of await records(app)) {
        expect(r.replacements.crash).toBe(0);
        expect(r.replacements.recycle).toBeGreaterThan(0);
      }
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    }, 60_000);

    it('maxRss: a worker that leaks is replaced once over it, under load, with no failed request', async () => {
      const path = join(dir.path, `maxrss-${transport}.sock`);
      // the workers' RSS when idle, to set maxRss 64 MiB above it
      const probe = await startApp({ address: path, parallelism: 2, transport });
      let idle: Rec[] = [];
      await waitFor(async () => (idle = await records(probe)).every((r) => r.heartbeat !== null), 5000, 100);
      const base = Math.max(...idle.map((r) => r.heartbeat!.rss));
      probe.child.kill('SIGTERM');
      expect(await probe.exited).toBe(0);
      const maxRss = base + 64 * 1024 * 1024;
      const app = await startApp({ address: path, parallelism: 2, transport, maxRss });
      // 2 MiB kept per request, about 40 requests a second
      const { failures } = await load(path, 150, 2, (i) => `/leak?kb=2048&wait=50&i=${i}`);
      expect(failures).toEqual([]);
      await waitFor(() => exitsOf(app).length >= 1, 10_000);
      expect(new Set(exitsOf(app).map((e) => e.reason))).toEqual(new Set(['recycle']));
      expect(await ask(path, '/')).toBe(200);
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    }, 60_000);

    it('server.recycle() in a worker asks for its own replacement: it listens first, then the old one finishes and exits 0', async () => {
      const path = join(dir.path, `recycle-${transport}.sock`);
      const app = await startApp({ address: path, parallelism: 2, transport });
      const res = await request(path, { uri: '/recycle' });
      expect(res.status).toBe(200);
      const pid = Number(res.headers['x-pid']);
      await waitFor(() => exitsOf(app).length === 1, 10_000);
      expect(exitsOf(app)).toEqual([expect.objectContaining({ pid, reason: 'recycle', code: 0 })]);
      const recs = await records(app);
      expect(recs).toHaveLength(2);
      expect(recs.map((r) => r.pid)).not.toContain(pid);
      expect(recs.filter((r) => r.replacements.recycle === 1)).toHaveLength(1);
      expect(await ask(path, '/')).toBe(200);
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    });
  });
}

describe('recycling needs a primary', () => {
  it('maxRequests and maxRss at parallelism 1 are refused, saying what to use instead', () => {
    expect(() => normalizeOptions({ maxRequests: 100 })).toThrow(/maxRequests needs parallelism > 1.*parallelism: 2.*Restart=/);
    expect(() => normalizeOptions({ maxRss: 1 << 30 })).toThrow(/maxRss needs parallelism > 1/);
    expect(() => normalizeOptions({ maxRequests: -1, parallelism: 2 })).toThrow(/maxRequests must be an integer from 0/);
    expect(() => normalizeOptions({ workerTimeout: 500 })).toThrow(/workerTimeout must be 0 \(off\) or from 2000/);
    expect(normalizeOptions({ maxRequests: 100, maxRequestsJitter: 5, maxRss: 1 << 30, parallelism: 2 })).toMatchObject({
      maxRequests: 100,
      maxRequestsJitter: 5,
      maxRss: 1 << 30,
    });
  });

  it('server.recycle() without a primary throws ERR_SCGI_NOT_SUPERVISED', async () => {
    const server = await serve(() => {}, { address: join(dir.path, 'p1-recycle.sock'), handleSignals: false, workerTimeout: 0 });
    try {
      expect(() => server.recycle!()).toThrow(expect.objectContaining({ code: 'ERR_SCGI_NOT_SUPERVISED' }));
    } finally {
      await server.close();
    }
  });
});

/** Spawn the app with stdout and stderr collected; resolves once it printed its ready line. */
async function spawnCollected(options: object, argv: string[] = [process.execPath, APP], env: Record<string, string> = {}) {
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify(options), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d) => (out.stdout += d));
  child.stderr!.on('data', (d) => (out.stderr += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  await Promise.race([
    waitFor(() => out.stdout.includes('"ready"'), 25_000),
    exited.then((e) => Promise.reject(new Error(`exited ${JSON.stringify(e)}: ${out.stderr}`))),
  ]);
  const ready = JSON.parse(out.stdout.split('\n').find((l) => l.includes('"ready"'))!) as Ready;
  for (const pid of ready.workers ?? []) workerPids.add(pid);
  return { child, out, exited, ready };
}

const lines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

for (const transport of TRANSPORTS) {
  describe(`signals (${transport})`, () => {
    it('SIGHUP at parallelism 1: a warning, the request in flight answered, still serving, the socket file in place', async () => {
      const path = join(dir.path, `hup1-${transport}.sock`);
      const app = await spawnCollected({ address: path, transport });
      const inFlight = ask(path, '/slow?ms=800');
      await new Promise((r) => setTimeout(r, 200));
      app.child.kill('SIGHUP');
      expect(await inFlight).toBe(200);
      expect(await ask(path, '/')).toBe(200);
      expect(app.child.exitCode).toBe(null);
      expect(app.out.stderr).toContain('SIGHUP ignored, still serving');
      expect(existsSync(path)).toBe(true);
      app.child.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(existsSync(path)).toBe(false);
    });

    for (const parallelism of [1, 2]) {
      it(`SIGTERM twice during the drain (parallelism ${parallelism}): every request in flight answered, exit 0`, async () => {
        const path = join(dir.path, `term2-${transport}-${parallelism}.sock`);
        const app = await spawnCollected({ address: path, transport, parallelism });
        const inFlight = Array.from({ length: 4 }, (_, i) => ask(path, `/slow?ms=1000&i=${i}`));
        await new Promise((r) => setTimeout(r, 200));
        app.child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 200));
        app.child.kill('SIGTERM');
        expect(await Promise.all(inFlight)).toEqual([200, 200, 200, 200]);
        expect(await app.exited).toEqual({ code: 0, signal: null });
        expect(existsSync(path)).toBe(false);
      });

      it(`a second SIGINT exits at once (parallelism ${parallelism}): status 130, no worker and no socket file left`, async () => {
        const path = join(dir.path, `int2-${transport}-${parallelism}.sock`);
        const app = await spawnCollected({ address: path, transport, parallelism, shutdownTimeout: 20_000 });
        const inFlight = ask(path, '/slow?ms=10000');
        await new Promise((r) => setTimeout(r, 200));
        app.child.kill('SIGINT');
        await new Promise((r) => setTimeout(r, 200));
        expect(app.child.exitCode).toBe(null); // the first one drains
        const t0 = Date.now();
        app.child.kill('SIGINT');
        expect(await app.exited).toEqual({ code: 130, signal: null });
        expect(Date.now() - t0).toBeLessThan(3000);
        expect(await inFlight).not.toBe(200);
        expect(existsSync(path)).toBe(false);
        for (const pid of app.ready.workers ?? []) await waitFor(() => !alive(pid), 3000);
      });
    }

    it('SIGTERM when a worker has closed its channel but not exited (one on its way out): the primary stops it and exits 0', async () => {
      const path = join(dir.path, `detach-${transport}.sock`);
      const app = await spawnCollected({ address: path, transport, parallelism: 2 });
      const res = await request(path, { uri: '/detach' });
      expect(res.status).toBe(200);
      const pid = Number(res.headers['x-pid']);
      await new Promise((r) => setTimeout(r, 200));
      expect(alive(pid)).toBe(true);
      app.child.kill('SIGTERM');
      expect(await app.exited, app.out.stderr).toEqual({ code: 0, signal: null });
      expect(app.out.stderr).not.toMatch(/Unhandled 'error' event|EPIPE|ERR_IPC_CHANNEL_CLOSED/);
      for (const w of app.ready.workers!) await waitFor(() => !alive(w), 5000);
      expect(existsSync(path)).toBe(false);
    });

    it("an IPC error on a Worker (EPIPE from node:cluster's own send to a worker that is exiting) does not end the primary; another error is reported", async () => {
      const path = join(dir.path, `werr-${transport}.sock`);
      const app = await spawnCollected({ address: path, transport, parallelism: 2 }, undefined, { SCGI_TEST_WORKER_ERRORS: '1' });
      await waitFor(() => app.out.stdout.includes('"workerErrors"'), 5000);
      expect(await ask(path, '/')).toBe(200);
      expect(app.child.exitCode).toBe(null);
      expect(app.out.stderr).not.toContain('write EPIPE');
      // reported as the primary's 'error' (the app logs it), the EPIPEs not
      expect(lines(app.out.stdout).filter((l) => 'error' in l)).toEqual([{ error: 'not the channel' }]);
      app.child.kill('SIGTERM');
      expect(await app.exited, app.out.stderr).toEqual({ code: 0, signal: null });
    });

    it('the primary killed (SIGKILL, the OOM killer): each worker finishes its requests in progress, then exits', async () => {
      const path = join(dir.path, `orphan-${transport}.sock`);
      const app = await spawnCollected({ address: path, transport, parallelism: 2 });
      const inFlight = Array.from({ length: 4 }, (_, i) => ask(path, `/slow?ms=800&i=${i}`));
      await new Promise((r) => setTimeout(r, 200));
      app.child.kill('SIGKILL');
      expect(await Promise.all(inFlight)).toEqual([200, 200, 200, 200]);
      for (const w of app.ready.workers!) await waitFor(() => !alive(w), 5000);
    });

    it('SIGHUP to a worker (a hangup of the process group) does not kill it: the primary reloads', async () => {
      const path = join(dir.path, `hupw-${transport}.sock`);
      const app = await spawnCollected({ address: path, transport, parallelism: 2 });
      const [w] = app.ready.workers!;
      process.kill(w!, 'SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      expect(alive(w!)).toBe(true);
      app.child.kill('SIGHUP');
      await waitFor(() => lines(app.out.stdout).some((l) => 'reloaded' in l), 15_000);
      const exits = lines(app.out.stdout)
        .filter((l) => 'workerExit' in l)
        .map((l) => (l.workerExit as { reason: string }).reason);
      expect(exits).toEqual(['reload', 'reload']);
      expect(await ask(path, '/')).toBe(200);
      app.child.kill('SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
    });
  });
}

/** Once the deploy is fixed: a SIGHUP replaces every one of `old`, two workers run, and SIGTERM exits 0. */
async function reloadReplacesAllThenStop(app: App, old: number[]): Promise<void> {
  app.child.kill('SIGHUP');
  await waitFor(() => app.lines.some((l) => 'reloaded' in l), 15_000);
  const after = await records(app);
  expect(after).toHaveLength(2);
  for (const r of after) expect(old).not.toContain(r.pid);
  app.child.kill('SIGTERM');
  expect(await app.exited).toBe(0);
}

for (const transport of TRANSPORTS) {
  describe(`a reload whose new workers fail to start (${transport} workers)`, () => {
    it('the old workers serve on, the pool stays at parallelism (no failed replacement is restarted), and the next reload, once fixed, replaces them', async () => {
      const path = join(dir.path, `broken-${transport}.sock`);
      const flag = join(dir.path, `broken-${transport}`);
      const app = await startApp({ address: path, transport, parallelism: 2 }, { SCGI_TEST_BROKEN_IF: flag });
      const old = app.ready.workers!;
      writeFileSync(flag, '');
      app.child.kill('SIGHUP');
      await waitFor(() => app.lines.some((l) => 'error' in l), 15_000);
      expect(app.lines.find((l) => 'error' in l)!.error).toMatch(/exited \(1\) before listening/);
      rmSync(flag);
      // a crash restart of the failed replacement would have come within its 100 ms backoff
      await new Promise((r) => setTimeout(r, 1500));
      const during = await records(app);
      expect(during.map((r) => r.pid).sort()).toEqual([...old].sort());
      expect(await ask(path, '/')).toBe(200);
      await reloadReplacesAllThenStop(app, old);
    });
  });
}

for (const transport of TRANSPORTS) {
  describe(`workerTimeout bounds a worker's start (${transport} workers)`, () => {
    it('serve() whose workers never listen rejects after workerTimeout (at least 10 s) with ERR_SCGI_WORKER_FAILED, instead of waiting for ever', async () => {
      const path = join(dir.path, `hangstart-${transport}.sock`);
      const flag = join(dir.path, `hangstart-${transport}`);
      writeFileSync(flag, '');
      const t0 = Date.now();
      const err = await spawnCollected({ address: path, transport, parallelism: 2, workerTimeout: 2000 }, undefined, { SCGI_TEST_HANG_IF: flag }).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/ERR_SCGI_WORKER_FAILED/);
      expect(err?.message).toMatch(
        /worker \d+ did not listen within 10000 ms of its start \(workerTimeout 2000 ms, at least 10000 ms for a start\): killed with SIGKILL/,
      );
      // workerTimeout 2000 is for a blocked loop; a start is given at least 10 s
      expect(Date.now() - t0).toBeGreaterThanOrEqual(10_000);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(existsSync(path)).toBe(false);
    }, 40_000);

    it('a worker that takes 3 s to load with workerTimeout 2000 is not killed: a start is given at least 10 s', async () => {
      const path = join(dir.path, `slowstart-${transport}.sock`);
      const app = await startApp({ address: path, transport, parallelism: 2, workerTimeout: 2000 }, { SCGI_TEST_START_MS: '3000' });
      expect(app.ready.workers).toHaveLength(2);
      expect(await ask(path, '/')).toBe(200);
      expect(exitsOf(app)).toEqual([]);
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    }, 40_000);

    it('a reload whose new worker hangs: it is killed after workerTimeout (at least 10 s), the old ones serve on, a later reload works', async () => {
      const path = join(dir.path, `hangreload-${transport}.sock`);
      const flag = join(dir.path, `hangreload-${transport}`);
      const app = await startApp({ address: path, transport, parallelism: 2, workerTimeout: 2000 }, { SCGI_TEST_HANG_IF: flag });
      const old = app.ready.workers!;
      writeFileSync(flag, '');
      app.child.kill('SIGHUP');
      await waitFor(() => app.lines.some((l) => 'error' in l), 25_000);
      expect(app.lines.find((l) => 'error' in l)!.error).toMatch(/did not listen within 10000 ms of its start/);
      expect(exitsOf(app).map((e) => e.reason)).toEqual(['timeout']);
      rmSync(flag);
      expect(await ask(path, '/')).toBe(200);
      expect((await records(app)).map((r) => r.pid).sort()).toEqual([...old].sort());
      await reloadReplacesAllThenStop(app, old);
    }, 40_000);
  });
}

for (const transport of TRANSPORTS) {
  describe(`a recycle whose replacement fails to start (${transport} workers)`, () => {
    it('the worker serves on, and the recycle is tried again (backoff) until a replacement listens', async () => {
      const path = join(dir.path, `recyclefail-${transport}.sock`);
      const flag = join(dir.path, `recyclefail-${transport}`);
      const app = await startApp({ address: path, transport, parallelism: 2 }, { SCGI_TEST_BROKEN_IF: flag });
      writeFileSync(flag, '');
      // server.recycle() in one worker: it asks once (as at its maxRequests-th request)
      const res = await request(path, { uri: '/recycle' });
      const pid = Number(res.headers['x-pid']);
      await waitFor(() => app.lines.some((l) => 'error' in l), 15_000);
      expect(app.lines.find((l) => 'error' in l)!.error).toMatch(/exited \(1\) before listening/);
      expect(exitsOf(app).map((e) => e.reason)).toEqual(['crash']);
      rmSync(flag);
      await waitFor(() => exitsOf(app).some((e) => e.reason === 'recycle'), 15_000);
      expect(exitsOf(app).filter((e) => e.reason === 'recycle')).toEqual([expect.objectContaining({ pid, code: 0 })]);
      expect((await records(app)).map((r) => r.pid)).not.toContain(pid);
      expect(await ask(path, '/')).toBe(200);
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    }, 30_000);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A holder that binds and listens, then passes the socket on fd 3 as systemd
 * does (LISTEN_FDS=1, LISTEN_PID = the app's pid) and runs the app, `runs`
 * times one after the other (a restart). Prints {"holder": port-or-path}.
 */
function holder(kind: 'tcp' | 'unix', path: string, runs: number, systemd: boolean): string[] {
  return [
    'python3',
    '-c',
    `import socket,os,sys,json
if ${kind === 'unix' ? 'True' : 'False'}:
    s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)}); where=${JSON.stringify(path)}
else:
    s=socket.socket(); s.bind(('127.0.0.1',0)); where='127.0.0.1:%d' % s.getsockname()[1]
s.listen(128)
print(json.dumps({'holder': where}), flush=True)
for run in range(${runs}):
    pid=os.fork()
    if pid==0:
        os.dup2(s.fileno(),3); os.set_inheritable(3,True)
        if ${systemd ? 'True' : 'False'}:
            os.environ['LISTEN_FDS']='1'; os.environ['LISTEN_PID']=str(os.getpid())
        os.execvp(sys.argv[1], sys.argv[1:])
    os.waitpid(pid,0)`,
    process.execPath,
    APP,
  ];
}

for (const transport of TRANSPORTS) {
  describe(`an inherited socket at parallelism 2 (${transport} workers)`, () => {
    it("socket: 'systemd' (TCP): the primary hands the socket to every worker; a restart under load loses no request", async () => {
      const app = await spawnCollected({ socket: 'systemd', parallelism: 2, transport }, holder('tcp', '', 2, true));
      workerPids.add(app.ready.pid);
      expect(app.ready.transport).toBe(transport);
      expect(app.ready.workers).toHaveLength(2);
      const where = lines(app.out.stdout).find((l) => 'holder' in l)!.holder as string;
      expect(app.ready.ready).toMatchObject({ port: Number(where.split(':')[1]) });
      // both workers accept on it
      const seen = new Set<number>();
      for (let round = 0; round < 20 && seen.size < 2; round++) {
        const got = await Promise.all(Array.from({ length: 16 }, () => request(where, { uri: '/slow?ms=5' })));
        for (const r of got) seen.add(Number(r.headers['x-pid']));
      }
      expect([...seen].sort()).toEqual([...app.ready.workers!].sort());
      // systemctl restart: the app stops (SIGTERM, drain) and starts again; the socket stays open in the holder
      const failures: string[] = [];
      let stop = false;
      let done = 0;
      const client = async () => {
        while (!stop) {
          const status = await ask(where, '/slow?ms=5', 20_000);
          if (status === 200) done++;
          else failures.push(String(status));
        }
      };
      const clients = Array.from({ length: 4 }, client);
      await new Promise((r) => setTimeout(r, 200));
      process.kill(app.ready.pid, 'SIGTERM');
      await waitFor(() => lines(app.out.stdout).filter((l) => 'ready' in l).length === 2, 15_000);
      const second = lines(app.out.stdout).filter((l) => 'ready' in l)[1] as unknown as Ready;
      workerPids.add(second.pid);
      for (const pid of second.workers ?? []) workerPids.add(pid);
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await Promise.all(clients);
      expect(failures).toEqual([]);
      expect(done).toBeGreaterThan(20);
      process.kill(second.pid, 'SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
    });

    it('socket: { fd: 3 } (a unix socket): every worker serves it, SIGHUP reloads with it, the socket file is left to its owner', async () => {
      const path = join(dir.path, `fd-${transport}.sock`);
      const app = await spawnCollected({ socket: { fd: 3 }, parallelism: 2, transport }, holder('unix', path, 1, false));
      workerPids.add(app.ready.pid);
      expect(app.ready.workers).toHaveLength(2);
      const seen = new Set<number>();
      for (let round = 0; round < 20 && seen.size < 2; round++) {
        const got = await Promise.all(Array.from({ length: 16 }, () => request(path, { uri: '/slow?ms=5' })));
        for (const r of got) seen.add(Number(r.headers['x-pid']));
      }
      expect([...seen].sort()).toEqual([...app.ready.workers!].sort());
      process.kill(app.ready.pid, 'SIGHUP');
      await waitFor(() => lines(app.out.stdout).some((l) => 'reloaded' in l), 15_000);
      const reloaded = lines(app.out.stdout).find((l) => 'reloaded' in l)!.reloaded as number[];
      for (const pid of reloaded) workerPids.add(pid);
      const after = await request(path, { uri: '/' });
      expect(reloaded).toContain(Number(after.headers['x-pid']));
      process.kill(app.ready.pid, 'SIGTERM');
      expect(await app.exited).toEqual({ code: 0, signal: null });
      expect(existsSync(path)).toBe(true);
    });
  });
}
