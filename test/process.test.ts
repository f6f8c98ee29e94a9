// The server as a process: inherited descriptors, systemd socket activation,
// cluster workers (crash and replace, SIGHUP reload), SIGTERM drain. The
// cluster tests run on the transport the environment selects (native by
// default where the addon has it; npm run test:all runs this file again with
// SCGI_TRANSPORT=net) and check that the workers really use it.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parserInfo } from '../src/parser/index.ts';
import { transportAddon } from '../src/transport/native-engine.ts';
import { spawnApp, type AppProcess } from './apps/spawn.ts';
import { scgiRequest, tempDir, waitFor, type Target } from './helpers.ts';

/** The transport serve() selects here (src/server/serve.ts chooseTransport), in process and for cluster workers alike. */
const TRANSPORT: 'native' | 'net' =
  process.env.SCGI_TRANSPORT === 'net'
    ? 'net'
    : process.env.SCGI_TRANSPORT === 'native' || (process.platform === 'linux' && transportAddon() !== null && parserInfo.forced !== 'js')
      ? 'native'
      : 'net';

const APP = fileURLToPath(new URL('./apps/app.mjs', import.meta.url));
const dir = tempDir();
afterAll(() => dir.cleanup());

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

type App = AppProcess<{ ready: string | { address: string; port: number }; pid: number; workers: number[] | null; transport: 'native' | 'net' }>;

/** Start test/apps/app.mjs (optionally through a wrapper argv) and wait for its ready line. */
function startApp(options: object, wrapper: string[] = []): Promise<App> {
  return spawnApp([...wrapper, process.execPath, APP], { SCGI_TEST_OPTIONS: JSON.stringify(options) }, children);
}

const pidOf = async (t: Target, uri = '/') => Number((await scgiRequest(t, { uri })).headers['x-pid']);

/** Which process answered, and over which transport (test/apps/app.mjs's X-Socket: is client.socket a net.Socket). */
async function answer(t: Target, uri = '/'): Promise<{ pid: number; socket: string }> {
  const res = await scgiRequest(t, { uri });
  expect(res.status).toBe(200);
  return { pid: Number(res.headers['x-pid']), socket: String(res.headers['x-socket']) };
}

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

describe(`parallelism (node:cluster, SCHED_NONE), workers on the ${TRANSPORT} transport`, () => {
  it('two workers serve on one unix socket; the socket is 0o660', async () => {
    const path = join(dir.path, 'cluster.sock');
    const app = await startApp({ address: path, parallelism: 2 });
    expect(app.ready.transport).toBe(TRANSPORT);
    expect(app.ready.workers).toHaveLength(2);
    expect((await answer({ path })).socket).toBe(TRANSPORT);
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

  it('TCP: every worker serves (distinct pids over many requests), each on the transport the primary reports', async () => {
    const app = await startApp({ address: '127.0.0.1:0', parallelism: 2 });
    expect(app.ready.transport).toBe(TRANSPORT);
    const target = { host: '127.0.0.1', port: (app.ready.ready as { port: number }).port };
    const perPid = new Map<number, number>();
    const sockets = new Set<string>();
    for (let round = 0; round < 20 && (perPid.size < 2 || round < 5); round++) {
      for (const a of await Promise.all(Array.from({ length: 20 }, () => answer(target, '/slow?ms=5')))) {
        perPid.set(a.pid, (perPid.get(a.pid) ?? 0) + 1);
        sockets.add(a.socket);
      }
    }
    expect([...perPid.keys()].sort()).toEqual([...app.ready.workers!].sort());
    expect([...sockets]).toEqual([TRANSPORT]);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });

  it("transport: 'net' gives net workers whatever the default", async () => {
    const path = join(dir.path, 'net-workers.sock');
    const app = await startApp({ address: path, parallelism: 2, transport: 'net' });
    expect(app.ready.transport).toBe('net');
    const got = await Promise.all(Array.from({ length: 20 }, () => answer({ path }, '/slow?ms=5')));
    expect(new Set(got.map((a) => a.socket))).toEqual(new Set(['net']));
    for (const a of got) expect(app.ready.workers).toContain(a.pid);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  it('a killed worker is replaced and requests keep being served', async () => {
    const app = await startApp({ address: '127.0.0.1:0', parallelism: 2 });
    expect(app.ready.transport).toBe(TRANSPORT);
    const target = { host: '127.0.0.1', port: (app.ready.ready as { port: number }).port };
    const [victim] = app.ready.workers!;
    process.kill(victim!, 'SIGKILL');
    await waitFor(() => app.lines.some((l) => 'workerExit' in l));
    // the survivor and then the replacement answer, the replacement on the same transport
    const seen = new Set<number>();
    const sockets = new Set<string>();
    await waitFor(async () => {
      const got = await Promise.all(Array.from({ length: 10 }, () => answer(target, '/slow?ms=5')));
      for (const a of got) {
        seen.add(a.pid);
        if (!app.ready.workers!.includes(a.pid)) sockets.add(a.socket);
      }
      return sockets.size > 0;
    }, 10_000);
    expect(seen.has(victim!)).toBe(false);
    expect([...sockets]).toEqual([TRANSPORT]);
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

  for (const kind of ['unix', 'tcp'] as const) {
    it(`SIGHUP under load replaces every worker with no failed request (${kind})`, async () => {
      const path = join(dir.path, 'hup.sock');
      const app = await startApp({ address: kind === 'unix' ? path : '127.0.0.1:0', parallelism: 2 });
      expect(app.ready.transport).toBe(TRANSPORT);
      const target: Target = kind === 'unix' ? { path } : { host: '127.0.0.1', port: (app.ready.ready as { port: number }).port };
      const failures: string[] = [];
      const pids = new Set<number>();
      const sockets = new Set<string>();
      let done = 0;
      let stop = false;
      // 8 clients, each sending one request after another: there is always a
      // request in progress or arriving while workers are retired and forked.
      const client = async () => {
        while (!stop) {
          try {
            const a = await answer(target, '/slow?ms=10');
            pids.add(a.pid);
            sockets.add(a.socket);
            done++;
          } catch (err) {
            failures.push(String(err));
          }
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, client));
      await new Promise((r) => setTimeout(r, 200));
      app.child.kill('SIGHUP');
      await waitFor(() => app.lines.some((l) => 'reloaded' in l), 20_000);
      // keep the load on the new workers for a moment
      await new Promise((r) => setTimeout(r, 200));
      stop = true;
      await load;
      const reloaded = app.lines.find((l) => 'reloaded' in l)!.reloaded as number[];
      expect(reloaded).toHaveLength(2);
      for (const pid of reloaded) expect(app.ready.workers).not.toContain(pid);
      expect(failures).toEqual([]);
      expect(done).toBeGreaterThan(50);
      // old and new workers both answered, all over the selected transport
      expect([...pids].some((p) => app.ready.workers!.includes(p))).toBe(true);
      expect([...pids].some((p) => reloaded.includes(p))).toBe(true);
      expect([...sockets]).toEqual([TRANSPORT]);
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
    });
  }
});
