import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach } from 'vitest';
import { type Handler, type ScgiServer, serve, type ServeOptions } from '../src/index.ts';
import { encodeRequest, parseResponse, type ClientRequest, type ClientResponse } from '../src/client/request.ts';
import { transportAddon } from '../src/transport/native-engine.ts';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

export interface Vector {
  file: string;
  front: string;
  case: string;
  bytes: number;
  contentLength: string | null;
  bodyBytes: number | null;
  bodySha256: string | null;
  pairs: [string, string][] | null;
}

export const vectors: Vector[] = JSON.parse(readFileSync(join(FIXTURES, 'index.json'), 'utf8'));

export function fixture(file: string): Buffer {
  return readFileSync(join(FIXTURES, file));
}

/** A temp dir removed after the test file. */
export function tempDir(prefix = 'scgi-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export type Target = { path: string } | { host: string; port: number };

export function targetOf(address: string | { address: string; port: number } | null): Target {
  if (address === null) throw new Error('not listening');
  if (typeof address === 'string') return { path: address };
  return { host: address.address, port: address.port };
}

export interface Exchange {
  /** Everything the server sent. */
  data: Buffer;
  /** Socket error code (ECONNRESET when the server reset), if any. */
  error: string | null;
  /** True when the server closed (EOF or reset). */
  closed: boolean;
}

/**
 * Write `bytes` (chunks, with optional pauses) and collect the reply until
 * the server closes or `timeout` ms pass. Never half-closes unless `end`.
 */
export function exchange(target: Target, chunks: Buffer | Buffer[], opts: { end?: boolean; timeout?: number; delay?: number } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket: Socket = connect(target as never);
    const got: Buffer[] = [];
    let error: string | null = null;
    const timer = setTimeout(() => finish(false), opts.timeout ?? 5000);
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(got), error, closed });
    };
    socket.on('data', (c: Buffer) => got.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => finish(true));
    socket.on('end', () => socket.end());
    socket.on('connect', async () => {
      const list = Array.isArray(chunks) ? chunks : [chunks];
      for (const c of list) {
        if (socket.destroyed) return;
        socket.write(c);
        if (opts.delay) await new Promise((r) => setTimeout(r, opts.delay));
      }
      if (opts.end) socket.end();
    });
  });
}

/** Send an SCGI request built from `req` and parse the CGI response. */
export async function scgiRequest(target: Target, req: ClientRequest = {}): Promise<ClientResponse & { error: string | null }> {
  const ex = await exchange(target, encodeRequest(req));
  return { ...parseResponse(ex.data), error: ex.error };
}

/** Netstring from raw pairs (no checks: for building bad input). */
export function netstring(block: Buffer | string): Buffer {
  const b = typeof block === 'string' ? Buffer.from(block, 'latin1') : block;
  return Buffer.concat([Buffer.from(`${b.length}:`), b, Buffer.from(',')]);
}

/** Header block from pairs. */
export function block(pairs: [string, string][]): Buffer {
  return Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
}

export function waitFor(cond: () => boolean | Promise<boolean>, timeout = 5000, step = 20): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      if (await cond()) return resolve();
      if (Date.now() - start > timeout) return reject(new Error('waitFor: timed out'));
      setTimeout(tick, step);
    };
    void tick();
  });
}

/** The 3 MiB body the vectors describe: byte[i] = (i*31 + 7 + (i>>>10)) & 0xff. */
export function bigBody(n = 3 * 1024 * 1024): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7 + (i >>> 10)) & 0xff;
  return b;
}

/** The transports `serve()` can use here: net always, native where the addon has it (Linux). */
export const TRANSPORTS: readonly ('net' | 'native')[] = process.platform === 'linux' && transportAddon() !== null ? ['net', 'native'] : ['net'];

/** What `testServers().start` resolves with. */
export interface TestServer {
  server: ScgiServer;
  /** For `exchange()` and `scgiRequest()`. */
  target: Target;
  /** The address served: the socket's path, or `host:port` when the options name a TCP address. */
  address: string;
}

/**
 * The one per-test server helper: `start(handler, options)` serves on a unix
 * socket of its own (in a temp dir of the calling file, removed after it),
 * with `defaults` under `options` and `handleSignals: false`; every server
 * started in a test is closed after it. `server` is the last one started.
 * Call at the top of a file or inside a `describe`.
 */
export function testServers(
  defaults: ServeOptions = {},
  prefix = 'scgi-test-',
): { start(handler: Handler, options?: ServeOptions): Promise<TestServer>; readonly server: ScgiServer; readonly dir: string } {
  let dir: { path: string; cleanup(): void } | null = null;
  const running: ScgiServer[] = [];
  let last: ScgiServer | null = null;
  let n = 0;
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.close()));
    last = null;
  });
  afterAll(() => dir?.cleanup());
  const dirPath = (): string => (dir ??= tempDir(prefix)).path;
  return {
    async start(handler, options = {}) {
      const server = await serve(handler, { address: join(dirPath(), `s${n++}.sock`), handleSignals: false, ...defaults, ...options });
      running.push(server);
      last = server;
      const where = server.address();
      const address = typeof where === 'string' ? where : `${where!.address}:${where!.port}`;
      return { server, target: targetOf(where as never), address };
    },
    get server() {
      return last!;
    },
    get dir() {
      return dirPath();
    },
  };
}

/**
 * A worker thread that calls the built package's `serve(handler, options)`
 * (both given as source text), posts `ready` (source text, may use `server`)
 * once it listens, closes on any message and then posts `{ closed: true }`;
 * a failure posts `{ error: 'CODE: message' }`. What it posts is in `messages`.
 */
export function serveInWorkerThread(handler: string, options: string, ready: string): { worker: Worker; messages: Record<string, unknown>[] } {
  const index = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
  const code = `const { parentPort } = require('node:worker_threads');
import(${JSON.stringify(index)}).then(async ({ serve }) => {
  try {
    const server = await serve(${handler}, ${options});
    parentPort.postMessage(${ready});
    parentPort.once('message', async () => { await server.close(); parentPort.postMessage({ closed: true }); });
  } catch (err) {
    parentPort.postMessage({ error: String(err.code) + ': ' + err.message });
  }
});`;
  const worker = new Worker(code, { eval: true });
  const messages: Record<string, unknown>[] = [];
  worker.on('message', (m) => messages.push(m));
  return { worker, messages };
}
