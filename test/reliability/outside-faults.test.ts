// Faults found from outside the suite (issue "Faults found from outside"): a
// cluster that loses every worker at once, a worker that fails before it
// listens, timeouts past the timer range, shutdown that waits on idle
// connections, unix paths over the platform limit, raw address errors,
// readHeader on a destroyed stream, slow-body exhaustion, accepting past the
// fd limit. Real processes, real sockets; every wait is bounded.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { readHeader, serve, type ScgiError, type ScgiServer } from '../../src/index.ts';
import { normalizeOptions } from '../../src/options.ts';
import { request } from '../../src/client/request.ts';
import { encodeRequest } from '../../src/client/request.ts';
import { exchange, tempDir, waitFor } from '../helpers.ts';
import { spawnApp, type AppProcess } from '../apps/spawn.ts';
import { sleep, spyOnProcessErrors } from './util.ts';

spyOnProcessErrors();

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = fileURLToPath(new URL('../apps/reliability-app.mjs', import.meta.url));
const DOOMED = fileURLToPath(new URL('../apps/cluster-doomed.mjs', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const dir = tempDir('scgi-outside-');
afterAll(() => dir.cleanup());

const children: ChildProcess[] = [];
const servers: ScgiServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

let n = 0;
const sockPath = () => join(dir.path, `o${n++}.sock`);

async function start(handler: Parameters<typeof serve>[0], options: Parameters<typeof serve>[1] = {}) {
  const address = sockPath();
  const server = await serve(handler, { address, handleSignals: false, onError: () => {}, ...options });
  servers.push(server);
  return { server, address };
}

const errOf = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: ScgiError) => e,
  );
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(safeRead(`/proc/${pid}/status`));
function safeRead(p: string): string {
  try {
    return spawnSync('cat', [p], { encoding: 'utf8' }).stdout;
  } catch {
    return '';
  }
}

type App = AppProcess<{ ready: string; pid: number; workers: number[] }>;
function startApp(address: string, options: object = {}, argvPrefix: string[] = []): Promise<App> {
  const opts = { address, parallelism: 2, ...options };
  return spawnApp([...argvPrefix, process.execPath, APP], { SCGI_TEST_ARRIVALS: '1', SCGI_TEST_OPTIONS: JSON.stringify(opts) }, children);
}

/** A connection that sends nothing (or `bytes`) and stays open. */
function idleConnection(address: string, bytes?: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ path: address });
    sockets.push(s);
    s.on('error', () => {});
    s.once('connect', () => {
      if (bytes) s.write(bytes);
      resolve(s);
    });
    s.once('error', reject);
  });
}

describe('1. cluster: every worker dying at once', () => {
  it('kill -9 of both workers at the same moment: the primary replaces them and keeps serving', async () => {
    const address = sockPath();
    const app = await startApp(address);
    const [a, b] = app.ready.workers;
    process.kill(a!, 'SIGKILL');
    process.kill(b!, 'SIGKILL');
    await sleep(4000); // the primary used to remove the socket and exit 0 within about 3 s
    expect(app.child.exitCode).toBe(null);
    expect(alive(app.ready.pid)).toBe(true);
    await waitFor(async () => (await request(address, { uri: '/after', timeout: 2000 }).catch(() => null))?.status === 200, 15_000, 100);
    const res = await request(address, { uri: '/who' });
    expect([a, b]).not.toContain(Number(res.headers['x-pid']));
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });

  it('an app bug that crashes every worker again and again: the primary keeps replacing them (backoff), never exits 0', async () => {
    const address = sockPath();
    const app = await startApp(address);
    // three rounds: every live worker gets a request that throws in a timer
    for (let round = 0; round < 3; round++) {
      await waitFor(async () => (await request(address, { uri: '/ping', timeout: 2000 }).catch(() => null))?.status === 200, 20_000, 100);
      for (let i = 0; i < 4; i++) await request(address, { uri: '/crash', timeout: 2000 }).catch(() => null);
      await waitFor(() => app.lines.filter((l) => 'workerExit' in l).length >= 2 * (round + 1), 20_000, 50).catch(() => {});
    }
    await sleep(1000);
    expect(app.child.exitCode).toBe(null);
    await waitFor(async () => (await request(address, { uri: '/back', timeout: 2000 }).catch(() => null))?.status === 200, 20_000, 100);
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  }, 90_000); // the backoff doubles with each crash: 100 ms … 3.2 s
});

describe('2. cluster: a worker that fails before listening', () => {
  it('serve() rejects, and nothing of it keeps running: no more forks, the started worker stopped, the primary exits by itself', async () => {
    const address = sockPath();
    const child = spawn(process.execPath, [DOOMED], {
      env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify({ address }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const lines: Record<string, unknown>[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitFor(() => lines.some((l) => 'rejected' in l), 15_000);
    expect(lines.find((l) => 'rejected' in l)!.rejected).toMatch(/^ERR_SCGI_/);
    const forksAtRejection = lines.filter((l) => 'worker' in l).length;
    await sleep(3000); // the primary used to keep forking doomed workers: 10 forks in 15 s
    const workers = lines.filter((l) => 'worker' in l).map((l) => l.worker as number);
    expect(workers.length).toBe(forksAtRejection);
    expect(workers.length).toBeLessThanOrEqual(2);
    const code = await Promise.race([exited, sleep(10_000).then(() => 'still running')]);
    expect(code).toBe(0);
    for (const pid of workers) expect(alive(pid), `worker ${pid}`).toBe(false);
    expect(existsSync(address)).toBe(false);
  });
});

describe('3. timeouts past 2^31-1 ms', () => {
  const ms = ['headerTimeout', 'requestTimeout', 'shutdownTimeout', 'drainTimeout', 'bodyTimeout'] as const;

  it('serve() refuses each ms option above 2147483647 with ERR_SCGI_INVALID_OPTION; 2147483647 is accepted', async () => {
    for (const key of ms) {
      const err = await errOf(serve(() => {}, { address: sockPath(), handleSignals: false, [key]: 2 ** 31 }));
      expect(err?.code, key).toBe('ERR_SCGI_INVALID_OPTION');
      expect(err?.message, key).toMatch(/2147483647/);
    }
    const { server } = await start(() => {}, { shutdownTimeout: 2 ** 31 - 1, headerTimeout: 2 ** 31 - 1 });
    expect(server.address()).toBeTruthy();
  });

  it('readHeader refuses headerTimeout above the range', async () => {
    const err = await errOf(readHeader(new PassThrough(), { headerTimeout: 2 ** 31 } as never));
    expect(err?.code).toBe('ERR_SCGI_INVALID_OPTION');
  });

  it('the CLI refuses --shutdown-timeout 2147483648 instead of serving', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', 'examples/hello.js', '--address', sockPath(), '--shutdown-timeout', '2147483648'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 8000,
    });
    expect(r.status).not.toBe(null); // it exited (a server that started keeps running until the timeout kills it)
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/2147483647/);
  });

  it('cluster: shutdownTimeout 2^31-1 (the kill timer is shutdownTimeout + 1 s): SIGTERM lets an in-flight request finish', async () => {
    const address = sockPath();
    const app = await startApp(address, { shutdownTimeout: 2 ** 31 - 1 });
    const inflight = request(address, { uri: '/slow?ms=800&big=1' });
    await waitFor(() => app.lines.some((l) => String(l.arrived ?? '').includes('big=1')), 10_000, 5);
    app.child.kill('SIGTERM');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toMatch(/\/slow\?ms=800&big=1/);
    expect(await app.exited).toBe(0);
  });
});

describe('4. shutdown does not wait for idle connections', () => {
  it('close() with a connection that sent nothing returns at once (not at headerTimeout)', async () => {
    const { server, address } = await start(() => {});
    await idleConnection(address);
    await waitFor(async () => (await server.getConnections()) === 1);
    const t0 = Date.now();
    await server.close();
    expect(Date.now() - t0).toBeLessThan(2000); // headerTimeout is 10 s
  });

  it('close() with half a header returns at once; headerTimeout 0 + shutdownTimeout 20 s too', async () => {
    const { server, address } = await start(() => {}, { headerTimeout: 0, shutdownTimeout: 20_000 });
    await idleConnection(address, encodeRequest({ uri: '/half' }).subarray(0, 20));
    await idleConnection(address);
    await waitFor(async () => (await server.getConnections()) === 2);
    const t0 = Date.now();
    await server.close();
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a request in progress still gets shutdownTimeout to finish while idle ones are closed', async () => {
    let arrived = false;
    const { server, address } = await start(async (_h, client) => {
      arrived = true;
      await sleep(500);
      client.end('Status: 200 OK\r\n\r\nfinished');
    });
    const idle = await idleConnection(address);
    const idleClosed = new Promise((r) => idle.once('close', r));
    const res = request(address, { uri: '/busy' });
    await waitFor(() => arrived);
    const closing = server.close();
    await Promise.race([idleClosed, sleep(1500).then(() => Promise.reject(new Error('the idle connection was not closed at once')))]);
    expect((await res).body.toString()).toBe('finished');
    await closing;
  });

  it('cluster: SIGHUP reload and SIGTERM with an idle connection do not wait for headerTimeout', async () => {
    const address = sockPath();
    const app = await startApp(address);
    await idleConnection(address);
    await idleConnection(address);
    const t0 = Date.now();
    app.child.kill('SIGHUP');
    await waitFor(() => app.lines.some((l) => 'reloaded' in l), 30_000);
    expect(Date.now() - t0).toBeLessThan(6000); // was 2 × headerTimeout (10 s) for two workers
    await idleConnection(address);
    const t1 = Date.now();
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    expect(Date.now() - t1).toBeLessThan(5000);
  });
});

describe('5. a unix socket path over the platform limit', () => {
  it('is refused before binding with ERR_SCGI_INVALID_ADDRESS naming the limit; nothing listens at the truncated path', async () => {
    const base = join(dir.path, 'long');
    mkdirSync(base, { recursive: true });
    const path = join(base, 'x'.repeat(123 - base.length - 1));
    expect(Buffer.byteLength(path)).toBe(123);
    const err = await errOf(serve(() => {}, { address: path, handleSignals: false }));
    expect(err?.code).toBe('ERR_SCGI_INVALID_ADDRESS');
    expect(err?.message).toMatch(/108/);
    expect(existsSync(path.slice(0, 107))).toBe(false);
    const err2 = await errOf(serve(() => {}, { address: path, handleSignals: false, parallelism: 2 }));
    expect(err2?.code).toBe('ERR_SCGI_INVALID_ADDRESS');
    expect(existsSync(path.slice(0, 107))).toBe(false);
  });

  it('107 bytes (+ the NUL = 108) still works', async () => {
    const base = join(dir.path, 'edge');
    mkdirSync(base, { recursive: true });
    const path = join(base, 'y'.repeat(107 - base.length - 1));
    expect(Buffer.byteLength(path)).toBe(107);
    const { server } = await start(() => {}, { address: path });
    expect(server.address()).toBe(path);
  });
});

describe('6. addresses and options that used to reach the OS raw', () => {
  const cases: [string, Parameters<typeof serve>[1], RegExp][] = [
    ['a blank address', { address: ' ' }, /blank|empty/i],
    ['a relative path without a slash', { address: 'relative.sock' }, new RegExp(resolvePath('relative.sock').replace(/[/.]/g, '\\$&'))],
    ['a relative path', { address: './rel.sock' }, new RegExp(resolvePath('rel.sock').replace(/[/.]/g, '\\$&'))],
    ['an IPv4 address with an octet over 255', { address: '999.1.1.1:6000' }, /0.?255|IPv4/],
    ['a ListenOptions port over 65535', { address: { port: 70000 } }, /65535/],
    ['a NUL byte in the path', { address: '/tmp/a\0b.sock' }, /NUL/],
    ['a NUL byte in a host', { address: 'local\0host:6000' }, /NUL/],
    ['a NUL byte in a ListenOptions path', { address: { path: '/tmp/x\0y.sock' } }, /NUL/],
  ];
  for (const [name, options, hint] of cases) {
    it(`${name}: ERR_SCGI_INVALID_ADDRESS saying what to write instead`, async () => {
      const err = await errOf(serve(() => {}, { handleSignals: false, ...options }));
      expect(err?.name).toBe('ScgiError');
      expect(err?.code).toBe('ERR_SCGI_INVALID_ADDRESS');
      expect(err?.message).toMatch(hint);
    });
  }

  it('a missing directory is an error (only the default socket directory is created)', async () => {
    const missing = join(dir.path, 'nonexistent', 'deep', 'dir');
    const err = await errOf(serve(() => {}, { address: join(missing, 'x.sock'), handleSignals: false }));
    expect(err?.code).toBe('ERR_SCGI_INVALID_ADDRESS');
    expect(err?.message).toMatch(/does not exist/);
    expect(existsSync(join(dir.path, 'nonexistent'))).toBe(false);
    const err2 = await errOf(serve(() => {}, { address: join(missing, 'y.sock'), handleSignals: false, parallelism: 2 }));
    expect(err2?.code).toBe('ERR_SCGI_INVALID_ADDRESS');
    expect(existsSync(join(dir.path, 'nonexistent'))).toBe(false);
  });

  // Node 20's statSync(..., { throwIfNoEntry: false }) throws ENOTDIR where
  // Node 22+ returns undefined: the code and the message must not depend on it.
  it('a regular file where a directory of the path should be: ERR_SCGI_INVALID_ADDRESS naming that file, on every Node version', async () => {
    const file = join(dir.path, 'plain-file');
    writeFileSync(file, 'not a directory');
    for (const address of [join(file, 'sub', 'app.sock'), join(file, 'app.sock')]) {
      for (const parallelism of [1, 2]) {
        const err = await errOf(serve(() => {}, { address, handleSignals: false, parallelism }));
        expect(err?.name).toBe('ScgiError');
        expect(err?.code).toBe('ERR_SCGI_INVALID_ADDRESS');
        expect(err?.message).toContain(`${file} is not a directory`);
        expect(err?.message).not.toMatch(/does not exist/);
      }
    }
  });

  it('EACCES on the path (a directory the user cannot search) is an ScgiError saying what to do, not a raw errno error', () => {
    const locked = join(dir.path, 'locked');
    mkdirSync(locked);
    chmodSync(dir.path, 0o755);
    chmodSync(locked, 0o700); // root's; the child runs as nobody
    const script = `import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)}).then(({ serve }) =>
      serve(() => {}, { address: ${JSON.stringify(join(locked, 'x.sock'))}, handleSignals: false }).then(
        () => { console.log(JSON.stringify({ served: true })); process.exit(0); },
        (e) => { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }))`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 });
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(out.name).toBe('ScgiError');
    expect(out.code).toBe('ERR_SCGI_SOCKET_FILE');
    expect(out.message).toMatch(/permission denied/i);
    expect(out.message).toMatch(/use a directory it owns/);
  });
});

describe('7. readHeader on a stream that goes away', () => {
  it('rejects when the stream is destroyed without an error in the middle of a header', async () => {
    const stream = new PassThrough();
    const p = errOf(readHeader(stream));
    stream.write(encodeRequest({ uri: '/x' }).subarray(0, 10));
    await sleep(20);
    stream.destroy();
    const err = await Promise.race([p, sleep(3000).then(() => 'still waiting')]);
    expect((err as ScgiError)?.code).toBe('ERR_SCGI_INCOMPLETE_HEADER');
  });

  it('takes headerTimeout like serve(): a header that stops coming rejects with ERR_SCGI_HEADER_TIMEOUT', async () => {
    const stream = new PassThrough();
    const p = errOf(readHeader(stream, { headerTimeout: 200 } as never));
    stream.write(encodeRequest({ uri: '/x' }).subarray(0, 10));
    const err = await Promise.race([p, sleep(3000).then(() => 'still waiting')]);
    expect((err as ScgiError)?.code).toBe('ERR_SCGI_HEADER_TIMEOUT');
    stream.destroy();
  });
});

describe('10. slow-body exhaustion', () => {
  /** A request whose body comes one byte every `every` ms, `count` bytes, then stops sending (socket held). */
  function trickle(address: string, every: number, count: number, length = 1000): Promise<{ closedAt: number | null; data: string }> {
    return new Promise((resolve) => {
      const s = connect({ path: address });
      sockets.push(s);
      let data = '';
      let sent = 0;
      const t0 = Date.now();
      let timer: NodeJS.Timeout;
      s.on('data', (c) => (data += c));
      s.on('error', () => {});
      s.once('connect', () => {
        const full = encodeRequest({ method: 'POST', uri: '/upload', body: Buffer.alloc(length, 0x61) });
        s.write(full.subarray(0, full.length - length));
        timer = setInterval(() => {
          if (s.destroyed || sent >= count) return;
          s.write('a');
          sent++;
        }, every);
      });
      s.once('close', () => {
        clearInterval(timer);
        resolve({ closedAt: Date.now() - t0, data });
      });
    });
  }

  it('a body trickled at 5 bytes/s cannot hold maxConnections: the connections are cut, real requests get 200, not 503', async () => {
    const { server, address } = await start(
      async (_h, client) => {
        let got = 0;
        for await (const c of client) got += c.length;
        client.end(`Status: 200 OK\r\n\r\n${got}`);
      },
      { maxConnections: 4, bodyTimeout: 600 },
    );
    const slow = Array.from({ length: 4 }, () => trickle(address, 200, 1000));
    await waitFor(async () => (await server.getConnections()) === 4);
    const cut = await Promise.race([Promise.all(slow), sleep(8000).then(() => null)]);
    expect(cut, 'the slow bodies were still holding their connections').not.toBe(null);
    const res = await request(address, { method: 'POST', body: 'honest', uri: '/real' });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('6');
    expect(server.stats.timeouts).toBeGreaterThanOrEqual(4);
  });

  it('an honest slow upload (steady, slower than bodyTimeout in total) completes', async () => {
    const { address } = await start(
      async (_h, client) => {
        let got = 0;
        for await (const c of client) got += c.length;
        client.end(`Status: 200 OK\r\n\r\n${got}`);
      },
      { bodyTimeout: 600 },
    );
    const body = Buffer.alloc(3000, 0x62);
    const full = encodeRequest({ method: 'POST', uri: '/slow-upload', body });
    const chunks = [full.subarray(0, full.length - body.length)];
    for (let i = 0; i < body.length; i += 200) chunks.push(body.subarray(i, i + 200));
    const ex = await exchange({ path: address }, chunks, { delay: 100, timeout: 10_000 });
    expect(ex.data.toString()).toBe('Status: 200 OK\r\n\r\n3000');
  });

  it('a handler that reads its body late (backpressure) is not cut by bodyTimeout', async () => {
    const size = 4 * 1024 * 1024;
    const { address } = await start(
      async (_h, client) => {
        await sleep(1500);
        let got = 0;
        for await (const c of client) got += c.length;
        client.end(`Status: 200 OK\r\n\r\n${got}`);
      },
      { bodyTimeout: 400 },
    );
    const res = await request(address, { method: 'POST', body: Buffer.alloc(size, 1), timeout: 20_000 });
    expect(res.body.toString()).toBe(String(size));
  });

  it('the protection is on by default', () => {
    const o = normalizeOptions({}) as unknown as { conn: { bodyTimeout: number; minBodyRate: number } };
    expect(o.conn.bodyTimeout).toBeGreaterThan(0);
    expect(o.conn.minBodyRate).toBeGreaterThan(0);
  });
});

describe('11. accepting past the fd limit', () => {
  it('with ulimit -n 256 and 400 connections: counted in stats, answered 503, one log line', async () => {
    const address = sockPath();
    const options = { address, parallelism: 1 };
    const child = spawn('sh', ['-c', 'ulimit -n 256 && exec "$0" "$1"', process.execPath, APP], {
      env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify(options) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (c) => (stderr += c));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (c) => (String(c).includes('ready') ? resolve() : undefined));
      child.once('exit', (code) => reject(new Error(`app exited ${code}: ${stderr}`)));
    });
    const got: string[] = [];
    const conns = await Promise.all(
      Array.from(
        { length: 400 },
        () =>
          new Promise<Socket>((resolve) => {
            const s = connect({ path: address });
            sockets.push(s);
            let data = '';
            s.on('data', (c) => (data += c));
            s.on('error', () => {});
            s.on('close', () => got.push(data));
            s.once('connect', () => resolve(s));
            s.once('error', () => resolve(s));
          }),
      ),
    );
    await waitFor(() => got.length >= 100, 10_000).catch(() => {});
    await sleep(500);
    const refused = got.filter((d) => d.startsWith('Status: 503')).length;
    for (const s of conns) s.destroy();
    await sleep(300);
    const stats = JSON.parse((await request(address, { uri: '/__stats' })).body.toString());
    child.kill('SIGTERM');
    expect(refused).toBeGreaterThan(0);
    expect(stats.fdExhausted).toBeGreaterThan(0);
    const lines = stderr.split('\n').filter((l) => /ulimit -n|file descriptor/i.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2); // rate-limited, not one per connection
  });
});
