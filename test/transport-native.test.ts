/**
 * serve() on the native transport: selection (`transport`, SCGI_TRANSPORT,
 * the fallbacks to net), and a differential test that feeds the same byte
 * streams (captured front requests, split at every point, truncated,
 * oversized, byte by byte) to a server on each transport and compares what
 * the handler saw, what the front got back, and what the server counted and
 * reported; then the same under option sets, handlers and fronts that reach
 * every phase of a request ("differential under ...").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createServer as netServer } from 'node:net';
import { join } from 'node:path';
import { serve, type ScgiServer, type ServeOptions } from '../src/index.ts';
import type { ScgiError } from '../src/errors.ts';
import { transportAddon } from '../src/transport/native-engine.ts';
import { parserInfo } from '../src/parser/index.ts';
import { bigBody, block, exchange, fixture, netstring, targetOf, tempDir, vectors, type Target } from './helpers.ts';

const available = process.platform === 'linux' && transportAddon() !== null;
// The native transport is there on Linux when the addon is built. CI builds
// it, so there its absence is a failure, never a silent skip.
if (process.env.CI && process.platform === 'linux' && !available) throw new Error('CI: the addon has no native transport (crates/scgi-napi did not build?)');
const describeNative = describe.runIf(available);

describe('transport selection', () => {
  it('rejects an unknown transport, from the option or the environment', async () => {
    await expect(serve(() => {}, { transport: 'uv' as never })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_OPTION' });
    const old = process.env.SCGI_TRANSPORT;
    process.env.SCGI_TRANSPORT = 'epoll';
    try {
      await expect(serve(() => {}, { address: '127.0.0.1:0' })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_OPTION' });
    } finally {
      if (old === undefined) delete process.env.SCGI_TRANSPORT;
      else process.env.SCGI_TRANSPORT = old;
    }
  });

  it('uses net when asked, whatever the environment says', async () => {
    const server = await serve(() => {}, { address: '127.0.0.1:0', transport: 'net', handleSignals: false });
    expect(server.transport).toBe('net');
    expect(server.server).not.toBe(null);
    await server.close();
  });
});

describeNative('transport selection (Linux, addon built)', () => {
  it('is native by default where the addon has it, net with SCGI_PARSER=js', async () => {
    const old = process.env.SCGI_TRANSPORT;
    delete process.env.SCGI_TRANSPORT;
    try {
      const server = await serve(() => {}, { address: '127.0.0.1:0', handleSignals: false });
      expect(server.transport).toBe(parserInfo.forced === 'js' ? 'net' : 'native');
      await server.close();
    } finally {
      if (old !== undefined) process.env.SCGI_TRANSPORT = old;
    }
  });

  it("transport: 'native' serves with the addon; SCGI_TRANSPORT=native does too", async () => {
    const a = await serve((_h, c) => c.end('Status: 200 OK\r\n\r\nA'), { address: '127.0.0.1:0', transport: 'native', handleSignals: false });
    expect(a.transport).toBe('native');
    expect(a.server).toBe(null);
    expect((await exchange(targetOf(a.address() as never), netstring(block([['CONTENT_LENGTH', '0']])))).data.toString()).toContain('A');
    await a.close();
    const old = process.env.SCGI_TRANSPORT;
    process.env.SCGI_TRANSPORT = 'native';
    try {
      const b = await serve(() => {}, { address: '127.0.0.1:0', handleSignals: false });
      expect(b.transport).toBe('native');
      await b.close();
    } finally {
      if (old === undefined) delete process.env.SCGI_TRANSPORT;
      else process.env.SCGI_TRANSPORT = old;
    }
  });

  it('falls back to net where sockets are handed to us (createServer, listen hooks, a net.Server)', async () => {
    const viaHook = await serve(() => {}, {
      address: '127.0.0.1:0',
      transport: 'native',
      handleSignals: false,
      createServer: (onConnection) => netServer(onConnection),
    });
    expect(viaHook.transport).toBe('net');
    await viaHook.close();
    const given = netServer();
    const pending = serve(() => {}, { socket: given, transport: 'native', handleSignals: false });
    given.listen(0, '127.0.0.1');
    const viaServer = await pending;
    expect(viaServer.transport).toBe('net');
    await viaServer.close();
  });

  it('listens natively on a unix socket with socketMode, and removes it on close', async () => {
    const dir = tempDir('scgi-native-unix-');
    try {
      const path = join(dir.path, 'n.sock');
      const server = await serve((_h, c) => c.end('Status: 200 OK\r\n\r\nU'), { address: path, transport: 'native', socketMode: 0o600, handleSignals: false });
      expect(server.address()).toBe(path);
      const { statSync, existsSync } = await import('node:fs');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect((await exchange({ path }, netstring(block([['CONTENT_LENGTH', '0']])))).data.toString()).toContain('U');
      await server.close();
      expect(existsSync(path)).toBe(false);
    } finally {
      dir.cleanup();
    }
  });

  it('takes an inherited listening descriptor ({ fd })', async () => {
    const holder = netServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const fd = (holder as unknown as { _handle: { fd: number } })._handle.fd;
    const port = (holder.address() as { port: number }).port;
    const server = await serve((_h, c) => c.end('Status: 200 OK\r\n\r\nFD'), { socket: { fd }, transport: 'native', handleSignals: false });
    expect(server.transport).toBe('native');
    holder.close();
    expect((await exchange({ host: '127.0.0.1', port }, netstring(block([['CONTENT_LENGTH', '0']])))).data.toString()).toContain('FD');
    await server.close();
  });
});

describeNative('backpressure on the native transport', () => {
  it('a handler looping on write() sees false while the front reads nothing, then drain, and the whole response arrives', async () => {
    const dir = tempDir('scgi-native-bp-');
    const path = join(dir.path, 'bp.sock');
    const CHUNK = 64 * 1024;
    const TOTAL = 32 * 1024 * 1024; // far more than the kernel buffers hold
    let firstFalseAt = -1;
    let drains = 0;
    const server = await serve(
      async (_h, client) => {
        client.write('Status: 200 OK\r\n\r\n');
        const chunk = Buffer.alloc(CHUNK, 0x61);
        for (let written = 0; written < TOTAL; written += CHUNK) {
          if (!client.write(chunk)) {
            if (firstFalseAt < 0) firstFalseAt = written + CHUNK;
            await new Promise((r) => client.once('drain', r));
            drains++;
          }
        }
        client.end();
      },
      { address: path, transport: 'native', handleSignals: false },
    );
    try {
      const socket = connect(path);
      socket.write(netstring(block([['CONTENT_LENGTH', '0']])));
      socket.pause();
      await new Promise((r) => setTimeout(r, 300));
      // The front has read nothing: the handler is waiting well before the end.
      expect(firstFalseAt).toBeGreaterThan(0);
      expect(firstFalseAt).toBeLessThan(TOTAL / 4);
      let got = 0;
      socket.on('data', (c: Buffer) => (got += c.length));
      socket.resume();
      await new Promise((r) => socket.on('end', r));
      socket.destroy();
      expect(got).toBe('Status: 200 OK\r\n\r\n'.length + TOTAL);
      expect(drains).toBeGreaterThan(0);
    } finally {
      await server.close();
      dir.cleanup();
    }
  });
});

interface Seen {
  data: string;
  closed: boolean;
  reset: boolean;
  handler: string[];
  clientErrors: string[];
  stats: Record<string, number>;
}

describeNative('differential: the same bytes through both transports', () => {
  const servers: Record<'net' | 'native', { server: ScgiServer; target: Target; log: string[]; errors: string[] }> = {} as never;

  beforeAll(async () => {
    for (const transport of ['net', 'native'] as const) {
      const log: string[] = [];
      const errors: string[] = [];
      const server = await serve(
        async (headers, client) => {
          const chunks: Buffer[] = [];
          for await (const c of client) chunks.push(c as Buffer);
          const body = Buffer.concat(chunks);
          const line = `${[...headers].map(([k, v]) => `${k}=${v}`).join('&')} body=${body.length}:${body.subarray(0, 32).toString('hex')}`;
          log.push(line);
          client.writeHead(200, { 'Content-Type': 'text/plain' });
          client.end(line);
        },
        {
          address: '127.0.0.1:0',
          transport,
          handleSignals: false,
          maxHeaderSize: 4096,
          maxBodySize: 200_000,
          headerTimeout: 2000,
        },
      );
      server.on('clientError', (err: ScgiError) => errors.push(err.code));
      servers[transport] = { server, target: targetOf(server.address() as never), log, errors };
    }
  });
  afterAll(async () => {
    for (const s of Object.values(servers)) await s.server.close();
  });

  async function through(transport: 'net' | 'native', chunks: Buffer[], opts: { end?: boolean; delay?: number } = {}): Promise<Seen> {
    const s = servers[transport];
    const logFrom = s.log.length;
    const errFrom = s.errors.length;
    const before = { ...s.server.stats };
    const ex = await exchange(s.target, chunks, { ...opts, timeout: 5000 });
    // What the server records for this connection is final once it closed on both sides.
    await new Promise((r) => setTimeout(r, 30));
    const after = s.server.stats;
    const stats: Record<string, number> = {};
    for (const k of Object.keys(after) as (keyof typeof after)[]) stats[k] = after[k] - before[k];
    return {
      data: ex.data.toString('latin1'),
      closed: ex.closed,
      reset: ex.error === 'ECONNRESET',
      handler: s.log.slice(logFrom),
      clientErrors: s.errors.slice(errFrom),
      stats,
    };
  }

  async function same(chunks: Buffer[], opts: { end?: boolean; delay?: number } = {}): Promise<Seen> {
    const net = await through('net', chunks, opts);
    const native = await through('native', chunks, opts);
    expect(native).toEqual(net);
    return net;
  }

  it('every captured front request (nginx, Apache, lighttpd vectors)', async () => {
    let served = 0;
    for (const v of vectors) {
      const bytes = fixture(v.file);
      const seen = await same([bytes], { end: v.bytes === 0 });
      if (seen.handler.length === 1) served++;
    }
    expect(served).toBeGreaterThan(20);
  });

  const request = Buffer.concat([
    netstring(
      block([
        ['CONTENT_LENGTH', '11'],
        ['SCGI', '1'],
        ['REQUEST_METHOD', 'POST'],
        ['REQUEST_URI', '/diff'],
      ]),
    ),
    Buffer.from('hello world'),
  ]);

  it('a request split in two at every point', async () => {
    for (let i = 1; i < request.length; i++) {
      const seen = await same([request.subarray(0, i), request.subarray(i)], { delay: 3 });
      expect(seen.handler).toHaveLength(1);
    }
  });

  it('a request cut short at every point (then FIN)', async () => {
    for (let i = 0; i < request.length; i++) await same([request.subarray(0, i)], { end: true });
  });

  it('byte by byte', async () => {
    const seen = await same(
      [...request].map((b) => Buffer.from([b])),
      { delay: 1 },
    );
    expect(seen.handler).toHaveLength(1);
  });

  it('oversized header, oversized body, bad netstrings, bad headers', async () => {
    const cases = [
      netstring(
        block([
          ['CONTENT_LENGTH', '0'],
          ['X', 'y'.repeat(5000)],
        ]),
      ),
      Buffer.concat([
        netstring(
          block([
            ['CONTENT_LENGTH', '300000'],
            ['SCGI', '1'],
          ]),
        ),
        bigBody(300_000),
      ]),
      Buffer.from('0005:abcde,'),
      Buffer.from('5:abcde;'),
      netstring(Buffer.from('CONTENT_LENGTH\x00x1\x00')),
      netstring(Buffer.from('SCGI\x001\x00CONTENT_LENGTH\x000\x00')),
      netstring(Buffer.from('CONTENT_LENGTH\x000\x00\x00v\x00')),
    ];
    for (const c of cases) {
      const seen = await same([c]);
      expect(seen.handler).toHaveLength(0);
    }
  });

  it('a body that streams in pieces, larger than what is read before dispatch', async () => {
    const body = bigBody(150_000);
    const bytes = Buffer.concat([netstring(block([['CONTENT_LENGTH', String(body.length)]])), body]);
    const seen = await same([bytes.subarray(0, 1000), bytes.subarray(1000, 90_000), bytes.subarray(90_000)], { delay: 5 });
    expect(seen.handler).toHaveLength(1);
  });
});

/**
 * The differential test again, under option sets that reach every phase of a
 * request from serve() (issue 18): bodyTimeout off, maxBodySize, a short
 * requestTimeout, a short drainTimeout, a short bodyTimeout (every wait of
 * a front or a handler is at least 100 ms away from every deadline, so the
 * outcome does not depend on scheduling); with handlers
 * that read at once, late, or slowly; and fronts that send the request whole,
 * stall mid-body, stall and then go away, or send more than the body.
 */
const OPTION_SETS: [string, ServeOptions][] = [
  ['bodyTimeout: 0', { bodyTimeout: 0 }],
  ['bodyTimeout: 0, requestTimeout: 150', { bodyTimeout: 0, requestTimeout: 150 }],
  ['bodyTimeout: 0, maxBodySize: 30', { bodyTimeout: 0, maxBodySize: 30 }],
  ['maxBodySize: 50', { maxBodySize: 50 }],
  ['requestTimeout: 150', { requestTimeout: 150 }],
  ['drainTimeout: 30', { drainTimeout: 30 }],
  ['bodyTimeout: 150', { bodyTimeout: 150 }],
];

type Reader = 'eager' | 'late' | 'slow';
const READERS: Reader[] = ['eager', 'late', 'slow'];
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeNative.each(OPTION_SETS)('differential under %s', (_name, options) => {
  type Side = { server: ScgiServer; target: Target; log: string[]; errors: string[]; onError: string[] };
  const sides: Record<'net' | 'native', Side> = {} as never;

  beforeAll(async () => {
    for (const transport of ['net', 'native'] as const) {
      const log: string[] = [];
      const errors: string[] = [];
      const onError: string[] = [];
      const server = await serve(
        async (headers, client) => {
          const reader = (headers.get('HTTP_X_READER') ?? 'eager') as Reader;
          if (reader === 'late') await pause(250);
          let n = 0;
          // The slow reader waits 15 ms after its first chunk and after each
          // 32 KiB it reads: how long it takes depends on the bytes, not on
          // how the transport cut them (the native engine's reads come in
          // more pieces than net's under load).
          let pacedAt = 0;
          try {
            for await (const c of client) {
              n += (c as Buffer).length;
              if (reader === 'slow' && (n === (c as Buffer).length || n - pacedAt >= 32 * 1024)) {
                pacedAt = n;
                await pause(15);
              }
            }
          } catch (err) {
            log.push(`${reader} failed ${(err as ScgiError).code} after ${n}`);
            throw err;
          }
          log.push(`${reader} read ${n}`);
          client.writeHead(200, { 'Content-Type': 'text/plain' });
          client.end(`${reader} ${n}`);
        },
        {
          address: '127.0.0.1:0',
          transport,
          handleSignals: false,
          ...options,
          onError: (err) => onError.push((err as ScgiError).code ?? err.message),
        },
      );
      server.on('clientError', (err: ScgiError) => errors.push(err.code));
      sides[transport] = { server, target: targetOf(server.address() as never), log, errors, onError };
    }
  });
  afterAll(async () => {
    for (const s of Object.values(sides)) await s.server.close();
  });

  /** A front: `steps` are bytes to send or ms to wait; `end`: FIN after the last step. */
  async function through(transport: 'net' | 'native', steps: (Buffer | number)[], end: boolean) {
    const s = sides[transport];
    const from = { log: s.log.length, errors: s.errors.length, onError: s.onError.length };
    const before = { ...s.server.stats };
    const ex = await new Promise<{ data: string; closed: boolean }>((resolve) => {
      const socket = connect(s.target as never);
      const got: Buffer[] = [];
      const timer = setTimeout(() => done(false), 3000);
      const done = (closed: boolean) => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ data: Buffer.concat(got).toString('latin1'), closed });
      };
      socket.on('data', (c: Buffer) => got.push(c));
      socket.on('error', () => {});
      socket.on('close', () => done(true));
      socket.on('end', () => socket.end());
      socket.on('connect', async () => {
        for (const step of steps) {
          if (socket.destroyed) return;
          if (typeof step === 'number') await pause(step);
          // A wait starts once the kernel has the bytes before it (a large
          // write is flushed over several turns of the loop, longer under load).
          else await new Promise((flushed) => socket.write(step, flushed));
        }
        if (end && !socket.destroyed) socket.end();
      });
    });
    await pause(60);
    const after = s.server.stats;
    const stats: Record<string, number> = {};
    for (const k of Object.keys(after) as (keyof typeof after)[]) stats[k] = after[k] - before[k];
    return {
      ...ex,
      handler: s.log.slice(from.log),
      clientErrors: s.errors.slice(from.errors),
      onError: s.onError.slice(from.onError),
      stats,
    };
  }

  const req = (reader: Reader, length: number) =>
    netstring(
      block([
        ['CONTENT_LENGTH', String(length)],
        ['SCGI', '1'],
        ['REQUEST_METHOD', 'POST'],
        ['HTTP_X_READER', reader],
      ]),
    );
  const body = bigBody(40);
  const big = bigBody(300_000);

  for (const reader of READERS) {
    const fronts: [string, (Buffer | number)[], boolean][] = [
      ['whole, in one write', [Buffer.concat([req(reader, 40), body])], false],
      ['the header, then the body 50 ms later', [req(reader, 40), 50, body], false],
      ['stalling mid-body, then the rest', [Buffer.concat([req(reader, 40), body.subarray(0, 10)]), 300, body.subarray(10)], false],
      ['stalling mid-body, then gone (FIN)', [Buffer.concat([req(reader, 40), body.subarray(0, 10)]), 300], true],
      ['the body, then more', [Buffer.concat([req(reader, 40), body, Buffer.alloc(100, 'x')])], false],
      // 600 ms: the slow reader takes up to ~60 ms (four waits) over 100,000 bytes and the
      // late one 250 ms, so the stall is still well past bodyTimeout once they have read them.
      ['a large body in pieces with a stall', [Buffer.concat([req(reader, big.length), big.subarray(0, 100_000)]), 600, big.subarray(100_000)], false],
    ];
    for (const [what, steps, end] of fronts) {
      it(`${reader} reader, front ${what}`, async () => {
        const [net, native] = await Promise.all([through('net', steps, end), through('native', steps, end)]);
        expect(native).toEqual(net);
      });
    }
  }
});

/** Sends one request over a socket of our own and resolves with its local address once the response ended. */
function requestFrom(target: Target): Promise<{ localAddress: string | undefined; localPort: number | undefined; response: string }> {
  return new Promise((resolve, reject) => {
    const s = 'path' in target ? connect(target.path) : connect(target.port, target.host);
    const chunks: Buffer[] = [];
    let local: { localAddress: string | undefined; localPort: number | undefined } = { localAddress: undefined, localPort: undefined };
    s.on('connect', () => {
      local = { localAddress: s.localAddress, localPort: s.localPort };
      // No FIN with the request: a front does not half-close (docs/ARCHITECTURE.md, "A connection").
      s.write(netstring(block([['CONTENT_LENGTH', '0']])));
    });
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => s.end());
    s.on('error', reject);
    s.on('close', () => resolve({ ...local, response: Buffer.concat(chunks).toString() }));
  });
}

describe.each(available ? (['net', 'native'] as const) : (['net'] as const))('client.socket.remoteAddress/remotePort (%s transport)', (transport) => {
  const peerServer = (address: string) => {
    const seen: { remoteAddress: unknown; remotePort: unknown }[] = [];
    const server = serve(
      (_h, c) => {
        seen.push({ remoteAddress: c.socket.remoteAddress, remotePort: c.socket.remotePort });
        c.end('Status: 200 OK\r\n\r\npeer');
      },
      { address, transport, handleSignals: false },
    );
    return { seen, server };
  };

  it('over TCP: the front address and port, as the front socket sees its own', async () => {
    const { seen, server: pending } = peerServer('127.0.0.1:0');
    const server = await pending;
    expect(server.transport).toBe(transport);
    try {
      const target = targetOf(server.address() as never);
      for (let i = 0; i < 3; i++) {
        const r = await requestFrom(target);
        expect(r.response).toContain('peer');
        expect(r.localPort).toBeGreaterThan(0);
        expect(seen[i]).toEqual({ remoteAddress: r.localAddress, remotePort: r.localPort });
      }
    } finally {
      await server.close();
    }
  });

  it('over a unix socket: undefined for both', async () => {
    const dir = tempDir('scgi-peer-');
    const { seen, server: pending } = peerServer(join(dir.path, 'p.sock'));
    const server = await pending;
    try {
      const r = await requestFrom(targetOf(server.address() as never));
      expect(r.response).toContain('peer');
      expect(seen).toEqual([{ remoteAddress: undefined, remotePort: undefined }]);
    } finally {
      await server.close();
      dir.cleanup();
    }
  });
});
