// Faults found from outside (issue 18) in what a process sees of serve():
// a serve() that rejects leaves nothing behind, stats.fdExhausted counts
// connections answered 503, a graceful stop resets nothing that reached the
// socket, unix sockets in worker_threads, an app's own node:cluster. Real
// processes, real sockets; every wait is bounded.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { serve, type ScgiError } from '../../src/index.ts';
import { parserInfo } from '../../src/parser/index.ts';
import { encodeRequest, request } from '../../src/client/request.ts';
import { transportAddon } from '../../src/transport/native-engine.ts';
import { serveInWorkerThread, targetOf, tempDir, TRANSPORTS, waitFor, type Target } from '../helpers.ts';
import { spawnApp } from '../apps/spawn.ts';
import { sleep, spyOnProcessErrors } from './util.ts';

spyOnProcessErrors();

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const APP = fileURLToPath(new URL('../apps/app.mjs', import.meta.url));
const dir = tempDir('scgi-process-outside-');
afterAll(() => dir.cleanup());

const children: ChildProcess[] = [];
const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

let n = 0;
const sockPath = () => join(dir.path, `p${n++}.sock`);
const openFds = () => readdirSync('/proc/self/fd').length;

/** Run `node --input-type=module -e script` (importing scgi from dist/); resolves with its exit code and output, or 'timeout'. */
function runScript(
  script: string,
  env: Record<string, string> = {},
  timeout = 10_000,
): Promise<{ code: number | null | 'timeout'; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: 'timeout', stdout, stderr });
    }, timeout);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.each(TRANSPORTS)('8. a serve() that rejects leaves nothing behind (%s)', (transport) => {
  it('60 failed calls (missing directory, not a socket, address in use) leave no extra descriptors', async () => {
    const notSocket = join(dir.path, `plain-${transport}`);
    writeFileSync(notSocket, 'x');
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const addresses = [join(dir.path, 'missing', 'dir', 's.sock'), notSocket, `127.0.0.1:${port}`];
    const before = openFds();
    const codes = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const err = await serve(() => {}, { address: addresses[i % 3], transport, handleSignals: false }).then(
        (s) => {
          void s.close();
          return null;
        },
        (e: ScgiError) => e,
      );
      expect(err).not.toBeNull();
      codes.add(err!.code);
    }
    const after = openFds();
    await new Promise<void>((r) => taken.close(() => r()));
    expect(codes.has('ERR_SCGI_ADDRESS_IN_USE')).toBe(true);
    expect(after - before).toBeLessThanOrEqual(0);
  });

  it('a script whose serve() rejected exits by itself', async () => {
    const missing = join(dir.path, 'nowhere', 'x.sock');
    const script = `import { serve } from 'scgi';
serve(() => {}, { address: ${JSON.stringify(missing)}, transport: ${JSON.stringify(transport)} }).catch((e) => console.log(e.code));`;
    const r = await runScript(script);
    expect(r.stdout.trim()).toMatch(/^ERR_SCGI_/);
    expect(r.code).toBe(0);
  });
});

describe.each(TRANSPORTS)('7. stats.fdExhausted counts connections answered 503, once each (%s)', (transport) => {
  it('ulimit -n 64, 100 connections held, none new: the count is the 503s the fronts got, and stays there', async () => {
    const address = sockPath();
    const child = spawn('sh', ['-c', 'ulimit -n 64 && exec "$0" "$1"', process.execPath, APP], {
      env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify({ address, transport, drainTimeout: 30_000, headerTimeout: 30_000 }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (c) => (stderr += c));
    const lines: { stats?: { fdExhausted: number } }[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
    await waitFor(() => lines.length > 0, 10_000);
    const stats = async () => {
      const before = lines.length;
      child.kill('SIGUSR2');
      await waitFor(() => lines.length > before);
      return lines.at(-1)!.stats!.fdExhausted;
    };
    const got = new Map<Socket, string>();
    for (let i = 0; i < 100; i++) {
      const s = connect({ path: address });
      sockets.push(s);
      got.set(s, '');
      s.on('data', (c) => got.set(s, got.get(s)! + c));
      s.on('error', () => {});
    }
    const answered503 = () => [...got.values()].filter((d) => d.startsWith('Status: 503')).length;
    await waitFor(() => answered503() > 0, 10_000);
    await sleep(500);
    const first = await stats();
    // the engine retries accept every 100 ms while descriptors are out
    await sleep(1500);
    const second = await stats();
    expect(first).toBeGreaterThan(0);
    expect(second).toBe(first);
    expect(second).toBe(answered503());
    // one line for the first, the rest are counted into the next report (rate-limited)
    expect(stderr).toMatch(/scgi: \d+ connections? refused with 503/);
  });
});

describe('13. scgi serve with an app that never finishes loading', () => {
  it('a top-level await that never settles: exit 1, saying what happened (not exit 13 in silence)', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', 'test/apps/cli/never-settles.mjs', '--address', sockPath()], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/never-settles\.mjs.*top-level await.*never settled/);
  });
});

describe("10. an app's own node:cluster (PM2's cluster mode)", () => {
  const FOREIGN = fileURLToPath(new URL('../apps/foreign-cluster.mjs', import.meta.url));
  /** Start test/apps/foreign-cluster.mjs; resolves with what each of its two workers printed. */
  async function start(options: object): Promise<{ child: ChildProcess; workers: { worker: number; transport?: string; error?: string }[] }> {
    const env: NodeJS.ProcessEnv = { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify(options) };
    delete env.SCGI_TRANSPORT;
    const child = spawn(process.execPath, [FOREIGN], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const workers: { worker: number; transport?: string; error?: string }[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => workers.push(JSON.parse(l)));
    await waitFor(() => workers.length >= 2, 10_000);
    return { child, workers };
  }
  const freePort = async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  };

  it('two workers, the same TCP address, no transport option: both listen (net, sharing the handle) and both answer', async () => {
    const port = await freePort();
    const { child, workers } = await start({ address: `127.0.0.1:${port}` });
    expect(workers.map((w) => w.error ?? w.transport)).toEqual(['net', 'net']);
    const pids = new Set<number>();
    for (let round = 0; round < 20 && pids.size < 2; round++) {
      const got = await Promise.all(Array.from({ length: 20 }, () => request(`127.0.0.1:${port}`, { uri: '/' })));
      for (const r of got) pids.add(Number(r.headers['x-pid']));
    }
    expect([...pids].sort()).toEqual(workers.map((w) => w.worker).sort());
    child.kill('SIGTERM');
  });

  it.runIf(TRANSPORTS.includes('native'))("transport: 'native' asked for explicitly is kept (the second worker cannot bind)", async () => {
    const port = await freePort();
    const { child, workers } = await start({ address: `127.0.0.1:${port}`, transport: 'native' });
    expect(workers.map((w) => w.error ?? w.transport).sort()).toEqual(['ERR_SCGI_ADDRESS_IN_USE', 'native']);
    child.kill('SIGTERM');
  });
});

describe('6. a cluster primary inside worker_threads', () => {
  it('parallelism > 1 in a worker thread is refused with ERR_SCGI_INVALID_OPTION (cluster.fork would run the main script)', async () => {
    const index = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
    const code = `const { parentPort } = require('node:worker_threads');
import(${JSON.stringify(index)}).then(({ serve }) => serve(() => {}, { address: ${JSON.stringify(sockPath())}, parallelism: 2 }))
  .then(() => parentPort.postMessage('listening'), (err) => parentPort.postMessage(String(err.code)));`;
    const worker = new Worker(code, { eval: true });
    try {
      const msg = await new Promise((resolve) => worker.once('message', resolve));
      expect(msg).toBe('ERR_SCGI_INVALID_OPTION');
    } finally {
      await worker.terminate();
    }
  });
});

describe.each(TRANSPORTS)('6. serve() on a unix socket inside worker_threads (%s)', (transport) => {
  it('listens, answers, the socket has socketMode from the first moment it is reachable, and close() removes it', async () => {
    const path = sockPath();
    const { worker, messages } = serveInWorkerThread(
      String.raw`(h, c) => c.end('Status: 200 OK\r\n\r\nthread\n')`,
      `{ address: ${JSON.stringify(path)}, transport: ${JSON.stringify(transport)}, socketMode: 0o600 }`,
      '{ listening: server.address(), transport: server.transport }',
    );
    try {
      await waitFor(() => messages.length > 0, 10_000);
      expect(messages[0]).toEqual({ listening: path, transport });
      expect(lstatSync(path).mode & 0o777).toBe(0o600);
      // nothing but the socket is left next to it (the private directory it was bound in is gone)
      expect(readdirSync(dir.path).filter((f) => f.startsWith('.scgi-'))).toEqual([]);
      const res = await request(path, { uri: '/' });
      expect(res.body.toString()).toBe('thread\n');
      worker.postMessage('close');
      await waitFor(() => messages.length > 1, 10_000);
      expect(existsSync(path)).toBe(false);
    } finally {
      await worker.terminate();
    }
  });
});

/**
 * `clients` fronts, each sending one request after another to `target` until
 * `stop()` says so or the server is gone; what happened to every connection
 * that was made: answered, reset (ECONNRESET/EPIPE, or closed without a
 * byte), or refused at connect (ENOENT, ECONNREFUSED: after the stop).
 */
function load(target: Target, clients = 8) {
  const seen = { answered: 0, reset: [] as string[], refused: 0 };
  let stop = false;
  const once = () =>
    new Promise<{ error: string | null; connected: boolean; data: string }>((resolve) => {
      const s = connect(target as never);
      let connected = false;
      let error: string | null = null;
      let data = '';
      const timer = setTimeout(() => s.destroy(), 10_000);
      s.on('connect', () => {
        connected = true;
        s.write(encodeRequest({ uri: '/slow?ms=2' }));
      });
      s.on('data', (c) => (data += c.toString('latin1')));
      s.on('end', () => s.end());
      s.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
      s.on('close', () => {
        clearTimeout(timer);
        resolve({ error, connected, data });
      });
    });
  const client = async () => {
    while (!stop) {
      const ex = await once();
      if (!ex.connected && (ex.error === 'ENOENT' || ex.error === 'ECONNREFUSED')) {
        seen.refused++;
        // the server is gone: one more try would only be refused again
        return;
      }
      if (ex.error !== null || !ex.data.startsWith('Status: 200')) {
        seen.reset.push(`${ex.error ?? 'closed'} ${ex.connected ? 'after connect' : 'at connect'}, ${ex.data.length} bytes`);
      } else seen.answered++;
    }
  };
  const running = Promise.all(Array.from({ length: clients }, client));
  return {
    seen,
    /** Make no new connection from now on (those in flight go on). */
    stopNew: () => {
      stop = true;
    },
    done: async () => {
      stop = true;
      await running;
    },
  };
}

/**
 * Net accepts its backlog before closing only where the addon can poll the
 * listener (src/server/serve.ts, #closeNetListener; SCGI_PARSER=js keeps off the
 * addon): elsewhere it closes at once, as documented.
 */
const drains = (transport: 'net' | 'native') => transport === 'native' || (parserInfo.forced !== 'js' && transportAddon() !== null);

describe.each(TRANSPORTS)('5. a graceful stop serves every connection that reached the socket (%s)', (transport) => {
  for (const kind of ['unix', 'tcp'] as const) {
    it.skipIf(!drains(transport))(`cluster (parallelism 2, ${kind}): SIGTERM to the primary under load resets no connection`, async () => {
      const path = sockPath();
      const app = await spawnApp<{ ready: string | { port: number } }>(
        [process.execPath, APP],
        { SCGI_TEST_OPTIONS: JSON.stringify({ address: kind === 'unix' ? path : '127.0.0.1:0', parallelism: 2, transport }) },
        children,
      );
      const target: Target = kind === 'unix' ? { path } : { host: '127.0.0.1', port: (app.ready.ready as { port: number }).port };
      const l = load(target);
      await waitFor(() => l.seen.answered >= 50, 10_000);
      // TCP has no path to remove: a connection whose handshake completes
      // after the last accept and before the last close is reset by the
      // kernel, so only connections made before the stop are asserted on
      // (a unix socket's path goes first: later ones are refused, and the
      // load goes on through the stop).
      if (kind === 'tcp') l.stopNew();
      app.child.kill('SIGTERM');
      expect(await app.exited).toBe(0);
      await l.done();
      expect(l.seen.reset).toEqual([]);
      expect(l.seen.answered).toBeGreaterThan(50);
    });

    it.skipIf(!drains(transport))(`in process (${kind}): close() under load resets no connection`, async () => {
      const server = await serve(
        async (_h, client) => {
          await sleep(2);
          client.end('Status: 200 OK\r\n\r\nok\n');
        },
        { address: kind === 'unix' ? sockPath() : '127.0.0.1:0', transport, handleSignals: false },
      );
      const l = load(targetOf(server.address() as string));
      await waitFor(() => l.seen.answered >= 50, 10_000);
      if (kind === 'tcp') l.stopNew(); // as in the cluster case above
      await server.close();
      await l.done();
      expect(l.seen.reset).toEqual([]);
    });
  }
});
