// Process faults under load through a real nginx: an app process with
// parallelism 2 on a unix socket (test/apps/reliability-app.mjs), a bounded
// load loop of Node fetches to nginx on loopback, concurrency 8.
//
// nginx is configured two ways in one server block, chosen per request by the
// X-Backend header:
//   plain:  scgi_pass unix:SOCK                  (one peer: nothing to retry on)
//   retry:  scgi_pass upstream { SOCK; SOCK }    (scgi_next_upstream error timeout,
//           so a request whose connection dies before the response header is
//           sent again on a fresh connection, which another worker accepts)
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type ScgiError } from '../../src/index.ts';
import { scgiRequest, tempDir, waitFor } from '../helpers.ts';
import { startNginx, type Nginx } from '../fronts/nginx.ts';
import { sleep, spyOnProcessErrors } from './util.ts';
import { spawnApp, type AppProcess } from '../apps/spawn.ts';

spyOnProcessErrors();

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = fileURLToPath(new URL('../apps/reliability-app.mjs', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const dir = tempDir('scgi-procfaults-');
const SOCK = join(dir.path, 'app.sock');
let nginx: Nginx;

beforeAll(async () => {
  nginx = await startNginx(
    dir.path,
    `location / {
      include scgi_params;
      scgi_next_upstream error timeout;
      scgi_connect_timeout 2s;
      scgi_pass $backend;
    }`,
    `upstream app_retry {
      server unix:${SOCK} max_fails=0;
      server unix:${SOCK} max_fails=0;
    }
    map $http_x_backend $backend {
      default unix:${SOCK};
      retry app_retry;
    }`,
  );
});
afterAll(async () => {
  await nginx?.stop();
  dir.cleanup();
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

type App = AppProcess<{ ready: string; pid: number; workers: number[] }>;

function startApp(options: object = {}): Promise<App> {
  const opts = { address: SOCK, parallelism: 2, socketGroup: 'nogroup', ...options };
  return spawnApp([process.execPath, APP], { SCGI_TEST_ARRIVALS: '1', SCGI_TEST_OPTIONS: JSON.stringify(opts) }, children);
}

interface Result {
  i: number;
  status: number;
  pid: number | null;
  error: string | null;
  startedAt: number;
}

/**
 * `total` GETs to nginx, `concurrency` at a time. `at(n, fn)` runs fn once
 * `n` requests have completed (the fault injection point). Bounded: every
 * fetch has a 15 s timeout.
 */
async function load(opts: {
  total: number;
  concurrency: number;
  uri: (i: number) => string;
  backend?: 'retry' | 'plain';
  at?: [number, () => void | Promise<void>];
}): Promise<Result[]> {
  const results: Result[] = [];
  let next = 0;
  let fired = false;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (next < opts.total) {
        const i = next++;
        const startedAt = Date.now();
        try {
          const res = await fetch(`${nginx.url}${opts.uri(i)}`, {
            headers: opts.backend === 'retry' ? { 'X-Backend': 'retry' } : {},
            signal: AbortSignal.timeout(15_000),
          });
          const text = await res.text();
          const pid = res.headers.get('x-pid');
          results.push({
            i,
            status: res.status,
            pid: pid === null ? null : Number(pid),
            error: res.status === 200 && !text.startsWith('pid ') ? `body ${text}` : null,
            startedAt,
          });
        } catch (err) {
          results.push({ i, status: 0, pid: null, error: String((err as Error).cause ?? err), startedAt });
        }
        if (!fired && opts.at !== undefined && results.length >= opts.at[0]) {
          fired = true;
          await opts.at[1]();
        }
      }
    }),
  );
  return results.sort((a, b) => a.i - b.i);
}

const failed = (rs: Result[]) => rs.filter((r) => r.status !== 200 || r.error !== null);

function logSince(from: number) {
  return nginx.errorLog().slice(from);
}

describe('under load through nginx, parallelism 2 on a unix socket', () => {
  it('kill -9 of one worker mid-load: it is replaced, a new pid answers, and no request fails (nginx retries)', async () => {
    const app = await startApp();
    const [victim, survivor] = app.ready.workers;
    const logFrom = nginx.errorLog().length;
    let killedAt = 0;
    const results = await load({
      total: 600,
      concurrency: 8,
      backend: 'retry',
      uri: (i) => `/slow?ms=${i % 3 === 0 ? 20 : 2}&i=${i}`,
      at: [
        150,
        async () => {
          // make sure the victim has requests in flight when it dies
          await waitFor(() => app.lines.slice(-50).some((l) => l.pid === victim), 10_000, 5);
          killedAt = Date.now();
          process.kill(victim!, 'SIGKILL');
        },
      ],
    });
    await waitFor(() => app.lines.some((l) => 'workerExit' in l), 10_000);
    const exit = app.lines.find((l) => 'workerExit' in l)!.workerExit as { pid: number; signal: string };
    expect(exit).toMatchObject({ pid: victim, signal: 'SIGKILL' });
    const retried = (logSince(logFrom).match(/upstream prematurely closed|reset by peer|Connection refused/g) ?? []).length;
    console.log(
      `kill -9 under load: ${results.length} requests, ${failed(results).length} failed, ${retried} upstream attempts failed and were retried by nginx`,
    );
    expect(failed(results)).toEqual([]);
    // the replacement serves: keep asking until a pid that was not there at the start answers
    const seen = new Set<number>();
    await waitFor(
      async () => {
        const rs = await load({ total: 16, concurrency: 8, uri: (i) => `/slow?ms=5&probe=${i}` });
        expect(failed(rs)).toEqual([]);
        for (const r of rs) seen.add(r.pid!);
        return [...seen].some((p) => p !== survivor && p !== victim);
      },
      15_000,
      50,
    );
    expect(seen.has(victim!)).toBe(false);
    expect(killedAt).toBeGreaterThan(0);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    expect(existsSync(SOCK)).toBe(false);
  });

  it('kill -9 without retries (plain scgi_pass): only requests in flight on the killed worker fail, with 502', async () => {
    const app = await startApp();
    const [victim] = app.ready.workers;
    let inFlightOnVictim = 0;
    const results = await load({
      total: 300,
      concurrency: 8,
      uri: (i) => `/slow?ms=${i % 3 === 0 ? 20 : 2}&i=${i}`,
      at: [
        100,
        async () => {
          await waitFor(() => app.lines.slice(-50).some((l) => l.pid === victim), 10_000, 5);
          inFlightOnVictim = 8; // an upper bound: at most `concurrency` requests are in flight anywhere
          process.kill(victim!, 'SIGKILL');
        },
      ],
    });
    const bad = failed(results);
    console.log(`kill -9 without retries: ${bad.length} of ${results.length} failed (${bad.map((r) => r.status).join(',')})`);
    expect(bad.every((r) => r.status === 502)).toBe(true);
    expect(bad.length).toBeLessThanOrEqual(inFlightOnVictim);
    await waitFor(() => app.lines.some((l) => 'workerExit' in l), 10_000);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });

  it('SIGHUP mid-load: every worker replaced one by one, zero failed requests (no retries needed)', async () => {
    const app = await startApp();
    const results = await load({
      total: 500,
      concurrency: 8,
      uri: (i) => `/slow?ms=${i % 4 === 0 ? 30 : 2}&i=${i}`,
      at: [100, () => void app.child.kill('SIGHUP')],
    });
    await waitFor(() => app.lines.some((l) => 'reloaded' in l), 30_000);
    const reloaded = app.lines.find((l) => 'reloaded' in l)!.reloaded as number[];
    expect(reloaded).toHaveLength(2);
    for (const pid of reloaded) expect(app.ready.workers).not.toContain(pid);
    expect(failed(results)).toEqual([]);
    const after = await load({ total: 40, concurrency: 8, uri: (i) => `/slow?ms=2&after=${i}` });
    expect(failed(after)).toEqual([]);
    expect(after.every((r) => reloaded.includes(r.pid!))).toBe(true);
    // retired, not crashed: each old worker's exit says 'reload'
    const exits = app.lines.filter((l) => 'workerExit' in l).map((l) => (l.workerExit as { reason: string }).reason);
    expect(exits).toEqual(['reload', 'reload']);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });

  it('SIGTERM mid-load: requests in flight complete, later ones are refused cleanly, socket removed, exit 0', async () => {
    const app = await startApp();
    const logFrom = nginx.errorLog().length;
    // 8 slow requests in flight, seen by the handlers
    const inflight = Promise.all(
      Array.from({ length: 8 }, (_, i) => fetch(`${nginx.url}/slow?ms=600&inflight=${i}`).then(async (r) => ({ status: r.status, text: await r.text() }))),
    );
    await waitFor(() => app.lines.filter((l) => String(l.arrived ?? '').includes('inflight=')).length === 8, 10_000, 5);
    app.child.kill('SIGTERM');
    const code = await app.exited;
    const done = await inflight;
    expect(done.map((r) => r.status)).toEqual(Array(8).fill(200));
    for (const [i, r] of done.entries()) expect(r.text).toMatch(new RegExp(`^pid \\d+ /slow\\?ms=600&inflight=${i}\\n$`));
    expect(code).toBe(0);
    expect(existsSync(SOCK)).toBe(false);
    // after: nginx cannot connect (no such file) and answers 502 at once, no hang
    const after = await load({ total: 8, concurrency: 4, uri: (i) => `/after-term/${i}` });
    expect(after.map((r) => r.status)).toEqual(Array(8).fill(502));
    expect(logSince(logFrom)).toMatch(/connect\(\) to unix:\S+ failed \(2: No such file or directory\)/);
    expect(logSince(logFrom)).not.toMatch(/prematurely closed|reset by peer/);
  });

  it('SIGTERM while a steady load keeps coming: every request gets 200 or a clean 502, none hangs or is cut', async () => {
    const app = await startApp();
    let termAt = 0;
    const results = await load({
      total: 300,
      concurrency: 8,
      uri: (i) => `/slow?ms=${i % 3 === 0 ? 50 : 2}&i=${i}`,
      at: [
        100,
        () => {
          termAt = Date.now();
          app.child.kill('SIGTERM');
        },
      ],
    });
    expect(await app.exited).toBe(0);
    expect(existsSync(SOCK)).toBe(false);
    const bad = failed(results);
    console.log(`SIGTERM under load: ${results.length - bad.length} served, ${bad.length} answered 502 by nginx after the app stopped accepting`);
    expect(results.every((r) => r.status === 200 || r.status === 502)).toBe(true);
    expect(results.filter((r) => r.status === 200 && r.error !== null)).toEqual([]); // no 200 with a cut body
    // Every request that reached a handler was completed; the 502s are requests
    // nginx could not hand to the app any more (sent after SIGTERM, or still
    // in the listen queue when the workers stopped accepting).
    const arrived = new Set(app.lines.filter((l) => typeof l.arrived === 'string').map((l) => Number(/[?&]i=(\d+)/.exec(l.arrived as string)![1])));
    expect(results.filter((r) => arrived.has(r.i) && r.status !== 200)).toEqual([]);
    expect(bad.every((r) => !arrived.has(r.i))).toBe(true);
    expect(bad.filter((r) => r.startedAt < termAt).length).toBeLessThanOrEqual(8); // at most the requests in flight at SIGTERM
  });

  it('restart on the same address with a stale socket file left by kill -9 of the whole app', async () => {
    const app = await startApp();
    expect((await load({ total: 8, concurrency: 4, uri: () => '/' })).every((r) => r.status === 200)).toBe(true);
    // kill the primary hard: the socket file stays behind, nothing listens on it
    process.kill(app.ready.pid, 'SIGKILL');
    await app.exited;
    for (const pid of app.ready.workers) await waitFor(() => !existsSync(`/proc/${pid}`), 10_000); // workers follow their primary
    expect(lstatSync(SOCK).isSocket()).toBe(true);
    expect((await fetch(`${nginx.url}/while-down`)).status).toBe(502);
    const again = await startApp();
    expect(again.ready.ready).toBe(SOCK);
    const rs = await load({ total: 40, concurrency: 8, uri: (i) => `/back/${i}` });
    expect(failed(rs)).toEqual([]);
    expect(rs.every((r) => again.ready.workers.includes(r.pid!))).toBe(true);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });

  it('a second server on the live address fails with ERR_SCGI_ADDRESS_IN_USE (in process, and the CLI exits 1), the socket untouched', async () => {
    const app = await startApp();
    const ino = lstatSync(SOCK).ino;
    // in process
    const err = await serve(() => {}, { address: SOCK, handleSignals: false }).then(
      () => null,
      (e: ScgiError) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_ADDRESS_IN_USE');
    // as a cluster primary too
    const err2 = await serve(() => {}, { address: SOCK, handleSignals: false, parallelism: 2 }).then(
      () => null,
      (e: ScgiError) => e,
    );
    expect(err2?.code).toBe('ERR_SCGI_ADDRESS_IN_USE');
    // the CLI
    const cli = spawnSync(process.execPath, [CLI, 'serve', 'examples/hello.js', '--address', SOCK], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    expect(cli.status).toBe(1);
    expect(cli.stderr + cli.stdout).toMatch(/ERR_SCGI_ADDRESS_IN_USE|already listening|in use/);
    // nothing stolen or deleted: same inode, the live app still answers through nginx
    expect(lstatSync(SOCK).ino).toBe(ino);
    const rs = await load({ total: 16, concurrency: 8, uri: (i) => `/still/${i}` });
    expect(failed(rs)).toEqual([]);
    expect(rs.every((r) => app.ready.workers.includes(r.pid!))).toBe(true);
    expect((await scgiRequest({ path: SOCK }, { uri: '/direct' })).status).toBe(200);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    await sleep(0);
  });
});
