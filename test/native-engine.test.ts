/**
 * The native transport engine (crates/scgi-napi/src/transport, bound by
 * src/transport/native-engine.ts) over real unix and TCP sockets: accept,
 * header validation with the caller's limits, small bodies read before
 * dispatch, large bodies streamed on demand, respond/write/drain, reset,
 * timeouts, maxConnections, stale ids, several engines and worker threads.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connect, createServer as netServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import { headersFromParse, type ScgiHeaders } from '../src/protocol/scgi-headers.ts';
import {
  CLOSE_ABORTED,
  CLOSE_BODY_TRUNCATED,
  CLOSE_DONE,
  NativeEngine,
  R_CLOSED,
  R_FULL,
  R_OK,
  R_STALE,
  REJECT_HEADER_TIMEOUT,
  REJECT_INCOMPLETE_HEADER,
  transportAddon,
  nativeTransportError,
  type NativeEngineEvents,
  type NativeEngineOptions,
} from '../src/transport/native-engine.ts';
import { plainResponse } from '../src/protocol/response.ts';
import { locateAddon } from '../src/parser/native.ts';
import { Code, OUT_HEADER_END } from '../src/parser/types.ts';
import { bigBody, block, exchange, netstring, tempDir, waitFor, type Target } from './helpers.ts';

const available = transportAddon() !== null;

beforeAll(() => {
  // Linux CI builds the addon: an engine that does not load there is a failure, not a skip.
  if (process.platform === 'linux' && !available) throw nativeTransportError();
});

interface Req {
  id: number;
  headers: ScgiHeaders;
  body: Buffer;
  complete: boolean;
}

interface Rig {
  engine: NativeEngine;
  target: Target;
  requests: Req[];
  rejects: number[];
  closes: [number, number][];
  drains: number[];
  data: Map<number, Buffer[]>;
  counters: { accepted: number; overloaded: number; acceptErrors: number };
  onRequest: (r: Req) => void;
}

const engines: NativeEngine[] = [];
const temps: { cleanup(): void }[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
  for (const t of temps.splice(0)) t.cleanup();
});

function defaults(): NativeEngineOptions {
  return {
    maxHeaderSize: 64 * 1024,
    maxHeadersCount: 1000,
    strict: false,
    maxConnections: Infinity,
    headerTimeout: 10_000,
    drainTimeout: 5_000,
    maxDrainSize: 16 * 1024 * 1024,
    writeHighWaterMark: 64 * 1024,
    allowHalfOpen: false,
    sweepInterval: 50,
    overloadResponse: Buffer.from(plainResponse(503, 'Service Unavailable\n'), 'latin1'),
  };
}

function rig(kind: 'tcp' | 'unix', opts: Partial<NativeEngineOptions> = {}, onRequest?: (r: Req, rig: Rig) => void): Rig {
  const r = {} as Rig;
  const events: NativeEngineEvents = {
    onRequest(id, bytes, recs, at, complete) {
      const headers = headersFromParse(bytes, recs, at, true);
      const req = { id, headers, body: Buffer.from(bytes.subarray(recs[at + OUT_HEADER_END]!)), complete };
      r.requests.push(req);
      r.onRequest(req);
    },
    onData(id, chunk) {
      const list = r.data.get(id) ?? [];
      list.push(Buffer.from(chunk));
      r.data.set(id, list);
    },
    onReject(code) {
      r.rejects.push(code);
    },
    onClose(id, reason) {
      r.closes.push([id, reason]);
    },
    onDrain(id) {
      r.drains.push(id);
    },
    onAccepted(a, o, e) {
      r.counters.accepted += a;
      r.counters.overloaded += o;
      r.counters.acceptErrors += e;
    },
  };
  const engine = new NativeEngine({ ...defaults(), ...opts }, events);
  engines.push(engine);
  let target: Target;
  if (kind === 'tcp') {
    const port = engine.listenTcp('127.0.0.1', 0);
    target = { host: '127.0.0.1', port };
  } else {
    const dir = tempDir('scgi-native-');
    temps.push(dir);
    const path = join(dir.path, 's.sock');
    engine.listenUnix(path);
    target = { path };
  }
  Object.assign(r, {
    engine,
    target,
    requests: [],
    rejects: [],
    closes: [],
    drains: [],
    data: new Map(),
    counters: { accepted: 0, overloaded: 0, acceptErrors: 0 },
    onRequest: (req: Req) => (onRequest ? onRequest(req, r) : engine.respond(req.id, 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok')),
  });
  return r;
}

function request(pairs: [string, string][], body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([netstring(block([['CONTENT_LENGTH', String(b.length)], ['SCGI', '1'], ...pairs])), b]);
}

// The native transport is there on Linux when the addon is built. CI builds
// it, so there its absence is a failure, never a silent skip.
if (process.env.CI && process.platform === 'linux' && !available) throw new Error('CI: the addon has no native transport (crates/scgi-napi did not build?)');
const describeNative = describe.runIf(available);

/**
 * Send `bytes` over TCP from a Python client and report what it received and
 * whether the connection ended with a reset. (Node reports a reset that
 * follows data as a plain end of stream; the kernel, and so nginx, see
 * ECONNRESET.)
 */
function pyExchange(port: number, bytes: Buffer): Promise<{ data: Buffer; reset: boolean }> {
  const code = [
    'import socket, sys',
    `s = socket.create_connection(("127.0.0.1", ${port}))`,
    'data = sys.stdin.buffer.read()',
    's.sendall(data)',
    's.settimeout(10)',
    'out = b""',
    'reset = False',
    'try:',
    '    while True:',
    '        d = s.recv(65536)',
    '        if not d: break',
    '        out += d',
    'except ConnectionResetError:',
    '    reset = True',
    'sys.stdout.buffer.write((b"R" if reset else b"F") + out)',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const py = spawn('python3', ['-c', code], { stdio: ['pipe', 'pipe', 'inherit'] });
    const got: Buffer[] = [];
    py.stdout.on('data', (c: Buffer) => got.push(c));
    py.on('error', reject);
    py.on('close', () => {
      const all = Buffer.concat(got);
      resolve({ data: all.subarray(1), reset: all[0] === 0x52 });
    });
    py.stdin.end(bytes);
  });
}

describeNative.each(['tcp', 'unix'] as const)('native engine over %s', (kind) => {
  it('hands a request over with its headers and body, and answers with FIN after the response', async () => {
    const r = rig(kind);
    const ex = await exchange(
      r.target,
      request(
        [
          ['REQUEST_METHOD', 'POST'],
          ['REQUEST_URI', '/x?y'],
        ],
        'hello',
      ),
    );
    expect(ex.error).toBe(null);
    expect(ex.closed).toBe(true);
    expect(ex.data.toString()).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok');
    expect(r.requests).toHaveLength(1);
    const req = r.requests[0]!;
    expect([...req.headers]).toEqual([
      ['CONTENT_LENGTH', '5'],
      ['SCGI', '1'],
      ['REQUEST_METHOD', 'POST'],
      ['REQUEST_URI', '/x?y'],
    ]);
    expect(req.body.toString()).toBe('hello');
    expect(req.complete).toBe(true);
    expect(r.counters.accepted).toBe(1);
  });

  it('reassembles a header sent one byte at a time (the body after it streams)', async () => {
    const r = rig(kind, {}, (req) => r.engine.resume(req.id));
    const bytes = request([['REQUEST_URI', '/slow']], 'abc');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    const ex = exchange(r.target, chunks, { delay: 1 });
    await waitFor(() => r.requests.length === 1 && Buffer.concat(r.data.get(r.requests[0]!.id) ?? []).length === 3);
    const req = r.requests[0]!;
    expect(req.headers.get('REQUEST_URI')).toBe('/slow');
    expect(req.complete).toBe(false);
    expect(Buffer.concat([req.body, ...(r.data.get(req.id) ?? [])]).toString()).toBe('abc');
    r.engine.respond(req.id, 'Status: 200 OK\r\n\r\nok');
    expect((await ex).data.toString()).toContain('ok');
  });

  it('serves many connections, each once, with fresh ids', async () => {
    const r = rig(kind);
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => exchange(r.target, request([['REQUEST_URI', `/${i}`]]))));
    for (const ex of results) expect(ex.data.toString()).toContain('ok');
    expect(r.requests).toHaveLength(40);
    expect(new Set(r.requests.map((q) => q.headers.get('REQUEST_URI'))).size).toBe(40);
    expect(new Set(r.requests.map((q) => q.id)).size).toBe(40);
    // Each connection drains until the front's FIN (never closes at once), so it is gone a loop turn after the client closed.
    await vi.waitFor(() => expect(r.engine.openConnections).toBe(0), { timeout: 5000 });
  });

  it.each([
    ['a bad netstring', Buffer.from('x5:abcde,'), {}, Code.BadNetstring],
    [
      'a header over maxHeaderSize',
      netstring(
        block([
          ['CONTENT_LENGTH', '0'],
          ['X', 'y'.repeat(200)],
        ]),
      ),
      { maxHeaderSize: 100 },
      Code.HeaderTooLarge,
    ],
    [
      'too many headers',
      netstring(
        block([
          ['CONTENT_LENGTH', '0'],
          ['A', '1'],
          ['B', '2'],
        ]),
      ),
      { maxHeadersCount: 2 },
      Code.TooManyHeaders,
    ],
    ['a missing SCGI in strict mode', netstring(block([['CONTENT_LENGTH', '0']])), { strict: true }, Code.MissingScgi],
    [
      'a duplicate in strict mode',
      netstring(
        block([
          ['CONTENT_LENGTH', '0'],
          ['SCGI', '1'],
          ['SCGI', '1'],
        ]),
      ),
      { strict: true },
      Code.DuplicateHeader,
    ],
  ] as const)('rejects %s with the parser code and closes', async (_name, bytes, opts, code) => {
    const r = rig(kind, opts);
    const ex = await exchange(r.target, bytes);
    expect(ex.closed).toBe(true);
    expect(ex.data.length).toBe(0);
    expect(r.rejects).toEqual([code]);
    expect(r.requests).toHaveLength(0);
  });

  it('accepts in non-strict mode what strict mode rejects', async () => {
    const r = rig(kind, { strict: false });
    const ex = await exchange(r.target, netstring(block([['CONTENT_LENGTH', '0']])));
    expect(ex.data.toString()).toContain('ok');
    expect(r.rejects).toEqual([]);
  });

  it('reports a header cut short by the front, and closes an empty connection quietly', async () => {
    const r = rig(kind);
    await exchange(r.target, Buffer.from('70:CONTENT_LEN'), { end: true });
    await exchange(r.target, Buffer.alloc(0), { end: true });
    await waitFor(() => r.engine.openConnections === 0);
    expect(r.rejects).toEqual([REJECT_INCOMPLETE_HEADER]);
  });

  it('closes a connection without a complete header after headerTimeout', async () => {
    const r = rig(kind, { headerTimeout: 100 });
    const ex = await exchange(r.target, Buffer.from('70:CONTENT_LEN'), { timeout: 5000 });
    expect(ex.closed).toBe(true);
    expect(r.rejects).toEqual([REJECT_HEADER_TIMEOUT]);
  });

  it("hands a request over at its header whatever its CONTENT_LENGTH (limits are the lifecycle's), and drains the unread body after the response", async () => {
    const r = rig(kind);
    const ex = await exchange(r.target, request([], bigBody(300_000)));
    expect(ex.error).toBe(null);
    expect(ex.data.toString()).toContain('ok');
    expect(r.rejects).toEqual([]);
    expect(r.requests).toHaveLength(1);
    expect(r.requests[0]!.headers.contentLength).toBe(300_000);
  });

  it('answers 503 past maxConnections and serves again once below', async () => {
    const held: Req[] = [];
    const r = rig(kind, { maxConnections: 1 }, (req) => held.push(req));
    const first = exchange(r.target, request([]));
    await waitFor(() => held.length === 1);
    const second = await exchange(r.target, request([]));
    expect(second.data.toString()).toMatch(/^Status: 503 /);
    expect(r.counters.overloaded).toBe(1);
    expect(r.engine.respond(held[0]!.id, 'Status: 200 OK\r\n\r\nfirst')).not.toBe(R_STALE);
    expect((await first).data.toString()).toContain('first');
    r.onRequest = (req) => r.engine.respond(req.id, 'Status: 200 OK\r\n\r\nthird');
    expect((await exchange(r.target, request([]))).data.toString()).toContain('third');
  });

  it('delivers every record of a batch when one throws (rethrown later, as an uncaught exception)', async () => {
    const r = rig(kind);
    // onReject throws for the bad netstring; the requests around it must still come.
    const thrown: string[] = [];
    const saved = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', (e) => thrown.push(e.message));
    r.rejects.push = () => {
      throw new Error('onReject bug');
    };
    try {
      const { connect } = await import('node:net');
      const socks = Array.from({ length: 6 }, () => ('path' in r.target ? connect(r.target.path) : connect(r.target.port, r.target.host)));
      for (const s of socks) s.on('error', () => {});
      await Promise.all(socks.map((s) => new Promise((res) => s.once('connect', res))));
      await new Promise((res) => setTimeout(res, 50));
      socks[0]!.write('5:abcde;');
      for (const s of socks.slice(1)) s.write(request([['N', 'x']]));
      await waitFor(() => r.requests.length === 5 && thrown.length === 1, 3000).catch(() => {});
      for (const s of socks) s.destroy();
      expect(r.requests).toHaveLength(5);
      expect(thrown).toEqual(['onReject bug']);
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const l of saved) process.on('uncaughtException', l);
    }
  });

  it('refuses a stale id: a response can never reach a later connection', async () => {
    const held: Req[] = [];
    const r = rig(kind, {}, (req) => held.push(req));
    const first = exchange(r.target, request([['N', '1']]));
    await waitFor(() => held.length === 1);
    const oldId = held[0]!.id;
    expect(r.engine.respond(oldId, 'Status: 200 OK\r\n\r\none')).not.toBe(R_STALE);
    expect(r.engine.respond(oldId, 'again')).toBe(R_STALE);
    await first;
    await waitFor(() => r.engine.openConnections === 0);
    const second = exchange(r.target, request([['N', '2']]));
    await waitFor(() => held.length === 2);
    // The slot is reused; the old id's generation is not.
    expect(held[1]!.id % 4194304).toBe(oldId % 4194304);
    expect(held[1]!.id).not.toBe(oldId);
    expect(r.engine.respond(oldId, 'Status: 500 wrong\r\n\r\n')).toBe(R_STALE);
    expect(r.engine.write(oldId, 'wrong')).toBe(R_STALE);
    expect(r.engine.reset(oldId)).toBe(R_STALE);
    r.engine.respond(held[1]!.id, 'Status: 200 OK\r\n\r\ntwo');
    expect((await second).data.toString()).toContain('two');
  });

  it('streams a large body on demand, pausing and resuming', async () => {
    const body = bigBody(1024 * 1024 + 17);
    const held: Req[] = [];
    const r = rig(kind, {}, (req) => held.push(req));
    const ex = exchange(r.target, request([], body));
    await waitFor(() => held.length === 1);
    const req = held[0]!;
    expect(req.complete).toBe(false);
    // Paused until asked: nothing arrives.
    await new Promise((res) => setTimeout(res, 50));
    expect(r.data.get(req.id)).toBeUndefined();
    r.engine.resume(req.id);
    await waitFor(() => (r.data.get(req.id) ?? []).reduce((n, c) => n + c.length, 0) > 0);
    r.engine.pause(req.id);
    await new Promise((res) => setTimeout(res, 50));
    const during = (r.data.get(req.id) ?? []).reduce((n, c) => n + c.length, 0);
    await new Promise((res) => setTimeout(res, 50));
    expect((r.data.get(req.id) ?? []).reduce((n, c) => n + c.length, 0)).toBe(during);
    r.engine.resume(req.id);
    await waitFor(() => req.body.length + (r.data.get(req.id) ?? []).reduce((n, c) => n + c.length, 0) === body.length);
    expect(Buffer.concat([req.body, ...(r.data.get(req.id) ?? [])]).equals(body)).toBe(true);
    r.engine.respond(req.id, 'Status: 200 OK\r\n\r\ngot it');
    const done = await ex;
    expect(done.data.toString()).toContain('got it');
    expect(done.error).toBe(null);
    await waitFor(() => r.closes.length === 1);
    expect(r.closes[0]).toEqual([req.id, CLOSE_DONE]);
  });

  it('hands a request over as soon as its header is complete; the body sent after it streams once asked for', async () => {
    const held: Req[] = [];
    const r = rig(kind, {}, (req) => {
      held.push(req);
      r.engine.resume(req.id);
    });
    const body = bigBody(90);
    const bytes = request([], body);
    const headerEnd = bytes.length - body.length;
    const ex = exchange(r.target, [bytes.subarray(0, headerEnd + 10), bytes.subarray(headerEnd + 10)], { delay: 100 });
    await waitFor(() => held.length === 1);
    const req = held[0]!;
    expect(req.complete).toBe(false);
    expect(req.body.equals(body.subarray(0, 10))).toBe(true);
    await waitFor(() => (r.data.get(req.id) ?? []).reduce((n, c) => n + c.length, 0) === 80);
    expect(Buffer.concat([req.body, ...(r.data.get(req.id) ?? [])]).equals(body)).toBe(true);
    r.engine.respond(req.id, 'Status: 200 OK\r\n\r\nok');
    expect((await ex).data.toString()).toContain('ok');
  });

  it('reports a body cut short by the front', async () => {
    const held: Req[] = [];
    const r = rig(kind, {}, (req) => {
      held.push(req);
      r.engine.resume(req.id);
    });
    await exchange(r.target, [request([], 'x'.repeat(100)).subarray(0, 60)], { end: true });
    await waitFor(() => r.closes.length === 1);
    expect(r.closes[0]).toEqual([held[0]!.id, CLOSE_BODY_TRUNCATED]);
  });

  it('reports a front that goes away before the response', async () => {
    const held: Req[] = [];
    const r = rig(kind, {}, (req) => held.push(req));
    const socket = connect(r.target as never);
    socket.on('error', () => {});
    socket.write(request([]));
    await waitFor(() => held.length === 1);
    socket.end();
    await waitFor(() => r.closes.length === 1);
    expect(r.closes[0]).toEqual([held[0]!.id, CLOSE_ABORTED]);
    expect(r.engine.respond(held[0]!.id, 'late')).toBe(R_STALE);
    socket.destroy();
  });

  it('reports a FIN that came together with the request', async () => {
    const held: Req[] = [];
    const r = rig(kind, {}, (req) => held.push(req));
    await exchange(r.target, request([]), { end: true });
    await waitFor(() => r.closes.length === 1);
    expect(r.closes[0]).toEqual([held[0]!.id, CLOSE_ABORTED]);
  });

  it('keeps answering after a half-close with allowHalfOpen', async () => {
    const held: Req[] = [];
    const r = rig(kind, { allowHalfOpen: true }, (req) => held.push(req));
    const ex = exchange(r.target, request([]), { end: true });
    await waitFor(() => held.length === 1);
    await new Promise((res) => setTimeout(res, 50));
    expect(r.closes).toEqual([]);
    r.engine.respond(held[0]!.id, 'Status: 200 OK\r\n\r\nlate but fine');
    expect((await ex).data.toString()).toContain('late but fine');
  });

  it('answers before reading the body and still closes cleanly (drain, no reset)', async () => {
    const r = rig(kind);
    const body = bigBody(512 * 1024);
    const ex = await exchange(r.target, request([], body));
    expect(ex.error).toBe(null);
    expect(ex.data.toString()).toContain('ok');
  });

  it('writes in pieces with a bound, signals drain, then ends', async () => {
    const held: Req[] = [];
    const r = rig(kind, { writeHighWaterMark: 16 * 1024 }, (req) => held.push(req));
    const socket: Socket = connect(r.target as never);
    const got: Buffer[] = [];
    socket.on('data', (c) => got.push(c));
    socket.write(request([]));
    await waitFor(() => held.length === 1);
    socket.pause();
    const id = held[0]!.id;
    expect(r.engine.write(id, 'Status: 200 OK\r\n\r\n')).toBe(R_OK);
    const piece = Buffer.alloc(256 * 1024, 0x61);
    let result = R_OK;
    let sent = 0;
    for (let i = 0; i < 64 && result === R_OK; i++) {
      result = r.engine.write(id, piece);
      sent += piece.length;
    }
    expect(result).toBe(R_FULL);
    expect(r.drains).toEqual([]);
    socket.resume();
    await waitFor(() => r.drains.length === 1);
    expect(r.drains).toEqual([id]);
    r.engine.respond(id, 'END');
    await new Promise((res) => socket.on('end', res));
    const all = Buffer.concat(got).toString('latin1');
    expect(all.length).toBe('Status: 200 OK\r\n\r\n'.length + sent + 3);
    expect(all.endsWith('aEND')).toBe(true);
    socket.destroy();
  });

  it('respond says R_FULL while the end of a response is still being written; the drain record comes with the last byte, and only then does drainTimeout run', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 'r');
    const results: number[] = [];
    const r = rig(kind, { drainTimeout: 100 }, (req) => results.push(r.engine.respond(req.id, Buffer.concat([Buffer.from('Status: 200 OK\r\n\r\n'), big]))));
    const { connect } = await import('node:net');
    const s = 'path' in r.target ? connect(r.target.path) : connect(r.target.port, r.target.host);
    let got = 0;
    s.on('data', (c: Buffer) => (got += c.length));
    s.pause();
    s.write(request([['X', 'y']], 'abc'));
    await waitFor(() => results.length === 1);
    expect(results).toEqual([R_FULL]);
    await new Promise((res) => setTimeout(res, 300)); // three drainTimeouts with the response unread
    expect(r.drains).toEqual([]);
    expect(r.closes).toEqual([]);
    s.resume();
    await waitFor(() => r.closes.length === 1, 5000);
    expect(r.drains).toEqual([r.requests[0]!.id]);
    expect(r.closes).toEqual([[r.requests[0]!.id, CLOSE_DONE]]);
    await waitFor(() => got >= big.length, 3000);
    s.destroy();
  });

  it('resets (TCP) or closes (unix) an incomplete response on reset()', async () => {
    const r = rig(kind, {}, (req) => {
      r.engine.write(req.id, 'Status: 200 OK\r\nContent-Length: 100\r\n\r\npartial');
      expect(r.engine.reset(req.id)).toBe(R_CLOSED);
    });
    if (kind === 'tcp') {
      const ex = await pyExchange((r.target as { port: number }).port, request([]));
      expect(ex.data.toString()).toContain('partial');
      expect(ex.reset).toBe(true);
    } else {
      const ex = await exchange(r.target, request([]));
      expect(ex.data.toString()).toContain('partial');
      expect(ex.closed).toBe(true);
    }
    expect(r.closes).toEqual([]);
  });

  it('closes idle connections on request, and stops accepting when the listener closes', async () => {
    const r = rig(kind);
    const idle = connect(r.target as never);
    idle.on('error', () => {});
    const closed = new Promise((res) => idle.on('close', res));
    await waitFor(() => r.counters.accepted === 1);
    expect(r.engine.closeIdle()).toBe(1);
    await closed;
    r.engine.closeListener();
    const ex = await exchange(r.target, request([]), { timeout: 2000 });
    expect(ex.error).toMatch(/ECONNREFUSED|ENOENT/);
  });
});

describeNative('native engine: instances and threads', () => {
  it('ends a complete response with FIN, not a reset, as the kernel sees it (TCP)', async () => {
    const r = rig('tcp');
    for (const body of ['', 'x'.repeat(100), bigBody(300_000)]) {
      const ex = await pyExchange((r.target as { port: number }).port, request([], body));
      expect(ex.reset).toBe(false);
      expect(ex.data.toString()).toContain('ok');
    }
  });

  it('runs several engines in one process, each with its own connections', async () => {
    const a = rig('tcp', {}, (req) => a.engine.respond(req.id, 'Status: 200 OK\r\n\r\nA'));
    const b = rig('tcp', {}, (req) => b.engine.respond(req.id, 'Status: 200 OK\r\n\r\nB'));
    const [x, y] = await Promise.all([exchange(a.target, request([])), exchange(b.target, request([]))]);
    expect(x.data.toString()).toContain('A');
    expect(y.data.toString()).toContain('B');
    a.engine.close();
    expect((await exchange(b.target, request([]))).data.toString()).toContain('B');
  });

  it('refuses the ids of a closed engine, ids that were live until the close', async () => {
    const held: Req[] = [];
    const c = rig('tcp', {}, (req) => held.push(req));
    const pending = [exchange(c.target, request([]), { timeout: 3000 }), exchange(c.target, request([]), { timeout: 3000 })];
    await waitFor(() => held.length === 2);
    const [one, two] = held as [Req, Req];
    // Live: a write of nothing is taken.
    expect(c.engine.write(one.id, '')).toBe(R_OK);
    expect(c.engine.pause(two.id)).toBe(R_OK);
    c.engine.close();
    // A closed engine knows no connection: calls are refused, not thrown.
    expect(c.engine.respond(one.id, 'Status: 200 OK\r\n\r\nlate')).toBe(R_STALE);
    expect(c.engine.write(two.id, 'late')).toBe(R_STALE);
    expect(c.engine.reset(one.id)).toBe(R_STALE);
    expect(c.engine.destroy(two.id)).toBe(R_STALE);
    for (const ex of await Promise.all(pending)) expect(ex.closed).toBe(true);
  });

  it('adopts an inherited listening socket', async () => {
    const server: Server = netServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    const port = (server.address() as { port: number }).port;
    const r = rig('unix');
    r.engine.closeListener();
    expect(r.engine.adopt(fd)).toBe(port);
    server.close(); // the engine holds its own duplicate
    const ex = await exchange({ host: '127.0.0.1', port }, request([]));
    expect(ex.data.toString()).toContain('ok');
  });

  it('serves from a worker thread and cleans up when the worker exits with the engine open', async () => {
    // The worker loads the addon itself (module hooks for .ts do not reach workers on Node 20).
    const addonPath = locateAddon().file;
    const code = `
      const { parentPort } = require('node:worker_threads');
      const a = require(${JSON.stringify(addonPath)});
      let t;
      const onBatch = (buf, recs) => {
        for (let i = 4; i < recs.length; i += 4 + recs[i + 3]) {
          if (recs[i] === 1) a.transportRespond(t, recs[i + 2] * 4194304 + recs[i + 1], 'Status: 200 OK\\r\\n\\r\\nfrom worker', 0);
        }
      };
      const o = { maxHeaderSize: 65536, maxHeadersCount: 100, strict: 0, maxConnections: 1e9, headerTimeout: 0,
        drainTimeout: 5000, maxDrainSize: 1e6, writeHighWaterMark: 65536, allowHalfOpen: 0, sweepInterval: 50, fdCeiling: Infinity };
      t = a.transportCreate(new Float64Array(a.transportConstants().CONFIG_FIELDS.map((k) => o[k])), onBatch, Buffer.from('x'));
      parentPort.postMessage(a.transportListenTcp(t, '127.0.0.1', 0, 511));`;
    const worker = new Worker(code, { eval: true });
    const port = await new Promise<number>((res, rej) => {
      worker.once('message', res);
      worker.once('error', rej);
    });
    const ex = await exchange({ host: '127.0.0.1', port }, request([]));
    expect(ex.data.toString()).toBe('Status: 200 OK\r\n\r\nfrom worker');
    // The engine is still open (and keeps the worker alive): terminating the
    // worker runs the environment cleanup hook, which must close it cleanly.
    const exit = await worker.terminate();
    expect(exit).toBe(1);
    const after = await exchange({ host: '127.0.0.1', port }, request([]), { timeout: 2000 });
    expect(after.error).toBe('ECONNREFUSED');
  });

  it('does not spin when accept runs out of descriptors, and accepts again after', async () => {
    // A child with a low descriptor limit: connections beyond it fail in
    // accept with EMFILE. A level-triggered loop would spin at 100% CPU.
    const url = new URL('../src/transport/native-engine.ts', import.meta.url).href;
    const script = `
      import(${JSON.stringify(url)}).then(({ NativeEngine }) => {
        let errors = 0;
        const e = new NativeEngine({
          maxHeaderSize: 65536, maxHeadersCount: 100, strict: false,
          maxConnections: Infinity, headerTimeout: 0, drainTimeout: 5000, maxDrainSize: 1e6,
          writeHighWaterMark: 65536, allowHalfOpen: false, sweepInterval: 50,
          overloadResponse: Buffer.from('x'),
        }, {
          onRequest(id) { e.respond(id, 'Status: 200 OK\\r\\n\\r\\nok'); },
          onData() {}, onReject() {}, onClose() {}, onDrain() {}, onAccepted(a, o, err) { errors += err; },
        });
        const port = e.listenTcp('127.0.0.1', 0);
        process.stdout.write(JSON.stringify({ port }) + '\\n');
        let last = process.cpuUsage();
        process.stdin.on('data', () => {
          const now = process.cpuUsage(last);
          last = process.cpuUsage();
          process.stdout.write(JSON.stringify({ cpu: (now.user + now.system) / 1000, errors }) + '\\n');
        });
      });`;
    const child = spawn(
      '/bin/sh',
      ['-c', `ulimit -n 64 && exec "${process.execPath}" --import ./scripts/ts-loader.mjs --input-type=module -e '${script.replace(/'/g, `'\\''`)}'`],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    try {
      const lines: string[] = [];
      let buffered = '';
      child.stdout.on('data', (c: Buffer) => {
        buffered += c.toString();
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        lines.push(...parts);
      });
      await waitFor(() => lines.length >= 1, 20_000);
      const { port } = JSON.parse(lines[0]!) as { port: number };
      const idle: Socket[] = [];
      for (let i = 0; i < 100; i++) {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => {});
        idle.push(s);
      }
      await new Promise((res) => setTimeout(res, 300));
      child.stdin.write('x');
      await waitFor(() => lines.length >= 2);
      await new Promise((res) => setTimeout(res, 1000));
      child.stdin.write('x');
      await waitFor(() => lines.length >= 3);
      const sample = JSON.parse(lines[2]!) as { cpu: number; errors: number };
      expect(sample.errors).toBeGreaterThan(0);
      // One second with the backlog full of connections it cannot accept:
      // a spinning loop burns ~1000 ms of CPU; backing off burns a few.
      expect(sample.cpu).toBeLessThan(300);
      for (const s of idle) s.destroy();
      const ex = await exchange({ host: '127.0.0.1', port }, request([]), { timeout: 10_000 });
      expect(ex.data.toString()).toContain('ok');
    } finally {
      child.kill();
    }
  });
});
