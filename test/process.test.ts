// The server as a process: inherited descriptors, systemd socket activation,
// cluster workers (crash and replace, SIGHUP reload), SIGTERM drain.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnApp, type AppProcess } from './apps/spawn.ts';
import { scgiRequest, tempDir, waitFor, type Target } from './helpers.ts';

const APP = fileURLToPath(new URL('./apps/app.mjs', import.meta.url));
const dir = tempDir();
afterAll(() => dir.cleanup());

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

type App = AppProcess<{ ready: string | { address: string; port: number }; pid: number; workers: number[] | null }>;

/** Start test/apps/app.mjs (optionally through a wrapper argv) and wait for its ready line. */
function startApp(options: object, wrapper: string[] = []): Promise<App> {
  return spawnApp([...wrapper, process.execPath, APP], { SCGI_TEST_OPTIONS: JSON.stringify(options) }, children);
}

const pidOf = async (t: Target, uri = '/') => Number((await scgiRequest(t, { uri })).headers['x-pid']);

describe('inherited sockets', () => {
  // python3 binds and listens, puts the socket on fd 3 and execs node (same pid).
  const wrap = (extra: string) => [
    'python3',
    '-c',
    `import socket,os,sys
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(64)
os.dup2(s.fileno(),3); os.set_inheritable(3,True)
os.environ['TEST_PORT']=str(s.getsockname()[1]); ${extra}
os.execvp(sys.argv[1], sys.argv[1:])`,
  ];

  it('socket: { fd: 3 }', async () => {
    const app = await startApp({ socket: { fd: 3 } }, wrap(''));
    const port = (app.ready.ready as { port: number }).port;
    expect(await pidOf({ host: '127.0.0.1', port })).toBe(app.ready.pid);
  });

  it("socket: 'systemd' (LISTEN_FDS, LISTEN_PID)", async () => {
    const app = await startApp({ socket: 'systemd' }, wrap("os.environ['LISTEN_FDS']='1'; os.environ['LISTEN_PID']=str(os.getpid())"));
    const port = (app.ready.ready as { port: number }).port;
    expect(await pidOf({ host: '127.0.0.1', port })).toBe(app.ready.pid);
  });
});

describe('SIGTERM', () => {
  it('finishes the request in progress, removes the socket file, exits 0', async () => {
    const path = join(dir.path, 'term.sock');
    const app = await startApp({ address: path });
    expect(lstatSync(path).isSocket()).toBe(true);
    const slow = scgiRequest({ path }, { uri: '/slow?ms=400' });
    await new Promise((r) => setTimeout(r, 100));
    app.child.kill('SIGTERM');
    const res = await slow;
    expect(res.status).toBe(200);
    expect(await app.exited).toBe(0);
    expect(existsSync(path)).toBe(false);
  });
});

describe('parallelism (node:cluster, SCHED_NONE)', () => {
  it('two workers serve on one unix socket; the socket is 0o660', async () => {
    const path = join(dir.path, 'cluster.sock');
    const app = await startApp({ address: path, parallelism: 2 });
    expect(app.ready.workers).toHaveLength(2);
    expect(lstatSync(path).mode & 0o777).toBe(0o660);
    const pids = new Set<number>();
    // Workers accept on their own; with enough concurrent requests both get some.
    for (let round = 0; round < 20 && pids.size < 2; round++) {
      const got = await Promise.all(Array.from({ length: 20 }, () => pidOf({ path }, '/slow?ms=5')));
      for (const p of got) pids.add(p);
    }
    expect([...pids].sort()).toEqual([...app.ready.workers!].sort());
    expect(pids.has(app.ready.pid)).toBe(false);
    // the primary's stats sum what the workers report (about once a second)
    const served = await Promise.all(Array.from({ length: 10 }, () => pidOf({ path })));
    expect(served).toHaveLength(10);
    let stats: { requests: number; connections: number } | undefined;
    await waitFor(
      async () => {
        const before = app.lines.length;
        app.child.kill('SIGUSR2');
        await waitFor(() => app.lines.length > before);
        stats = app.lines.at(-1)!.stats as typeof stats;
        return stats!.requests >= 10;
      },
      10_000,
      300,
    );
    expect(stats!.connections).toBeGreaterThanOrEqual(stats!.requests);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  it('a killed worker is replaced and requests keep being served', async () => {
    const app = await startApp({ address: '127.0.0.1:0', parallelism: 2 });
    const target = { host: '127.0.0.1', port: (app.ready.ready as { port: number }).port };
    const [victim] = app.ready.workers!;
    process.kill(victim!, 'SIGKILL');
    await waitFor(() => app.lines.some((l) => 'workerExit' in l));
    // the survivor and then the replacement answer
    const seen = new Set<number>();
    await waitFor(async () => {
      const got = await Promise.all(Array.from({ length: 10 }, () => pidOf(target, '/slow?ms=5')));
      for (const p of got) seen.add(p);
      return [...seen].filter((p) => !app.ready.workers!.includes(p)).length > 0;
    }, 10_000);
    expect(seen.has(victim!)).toBe(false);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });

  it('SIGTERM while a replacement worker is still starting: every process exits, without waiting for the kill timer', async () => {
    // shutdownTimeout 60 s: a worker that missed the shutdown message would
    // only die when the primary kills it after that, past this test's timeout.
    const app = await startApp({ address: '127.0.0.1:0', parallelism: 2, shutdownTimeout: 60_000 });
    process.kill(app.ready.workers![0]!, 'SIGKILL');
    await waitFor(() => app.lines.some((l) => 'workerExit' in l));
    // the replacement is forked after a 100 ms backoff; stop the app while it boots
    await new Promise((r) => setTimeout(r, 130));
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });

  it('SIGHUP replaces every worker with no failed request', async () => {
    const path = join(dir.path, 'hup.sock');
    const app = await startApp({ address: path, parallelism: 2 });
    let failures = 0;
    let done = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        const batch = await Promise.allSettled(Array.from({ length: 4 }, () => scgiRequest({ path }, { uri: '/slow?ms=20' })));
        for (const r of batch) {
          if (r.status === 'rejected' || r.value.status !== 200) failures++;
          else done++;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    app.child.kill('SIGHUP');
    await waitFor(() => app.lines.some((l) => 'reloaded' in l), 20_000);
    stop = true;
    await load;
    const reloaded = app.lines.find((l) => 'reloaded' in l)!.reloaded as number[];
    expect(reloaded).toHaveLength(2);
    for (const pid of reloaded) expect(app.ready.workers).not.toContain(pid);
    expect(failures).toBe(0);
    expect(done).toBeGreaterThan(0);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });
});
