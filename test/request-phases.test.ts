/**
 * Every phase of a request under the lifecycle's deadlines and limits, the
 * same on both transports (issue 18): a body still coming when the header is
 * complete, a handler that reads late, a response larger than the front reads
 * quickly, bytes past the body, errors reported once.
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ScgiError } from '../src/errors.ts';
import type { ScgiClient, ScgiHeaders, ServeOptions } from '../src/index.ts';
import { block, netstring, testServers, TRANSPORTS, waitFor } from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A header announcing `length` body bytes. */
function head(length: number, extra: [string, string][] = []): Buffer {
  return netstring(block([['CONTENT_LENGTH', String(length)], ['SCGI', '1'], ['REQUEST_METHOD', 'POST'], ['REQUEST_URI', '/'], ...extra]));
}

/** A raw front connection: what it received, and whether the server closed it. */
interface Front {
  socket: Socket;
  data(): string;
  bytes(): number;
  closed: boolean;
  error: string | null;
  done: Promise<void>;
}

function front(path: string, first?: Buffer, opts: { paused?: boolean } = {}): Front {
  const socket = connect(path);
  const got: Buffer[] = [];
  let n = 0;
  const f: Front = {
    socket,
    data: () => Buffer.concat(got).toString('latin1'),
    bytes: () => n,
    closed: false,
    error: null,
    done: null as never,
  };
  f.done = new Promise((resolve) => {
    socket.on('close', () => {
      f.closed = true;
      resolve();
    });
  });
  socket.on('data', (c: Buffer) => {
    n += c.length;
    if (got.length < 64) got.push(c);
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    f.error = e.code ?? e.message;
  });
  if (opts.paused) socket.pause();
  if (first !== undefined) socket.write(first);
  return f;
}

async function readAll(client: ScgiClient): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of client) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe.each(TRANSPORTS)('a request whose body is still coming (%s transport)', (transport) => {
  const s = testServers({ transport });

  it('bodyTimeout 0: requestTimeout still ends a request whose body stalls (the handler runs meanwhile)', async () => {
    let called = 0;
    const { address: path } = await s.start(
      async (_h, client) => {
        called++;
        await readAll(client).catch(() => {});
      },
      { bodyTimeout: 0, requestTimeout: 300 },
    );
    const f = front(path, Buffer.concat([head(1000), Buffer.alloc(10, 'a')]));
    await Promise.race([f.done, sleep(3000)]);
    expect(called).toBe(1);
    expect(f.closed).toBe(true);
    expect(s.server.stats.timeouts).toBe(1);
    f.socket.destroy();
  });

  it('bodyTimeout 0: CONTENT_LENGTH over maxBodySize is answered 413 before the body is all in', async () => {
    let called = 0;
    const errors: string[] = [];
    const { address: path } = await s.start(
      () => {
        called++;
      },
      { bodyTimeout: 0, maxBodySize: 50 },
    );
    s.server.on('clientError', (e: ScgiError) => errors.push(e.code));
    const f = front(path, Buffer.concat([head(100), Buffer.alloc(10, 'a')]));
    await waitFor(() => f.data().includes('413'), 2000).catch(() => {});
    expect(f.data()).toMatch(/^Status: 413/);
    expect(errors).toEqual(['ERR_SCGI_BODY_TOO_LARGE']);
    expect(called).toBe(0);
    f.socket.destroy();
  });

  it('bodyTimeout 0: close() during an upload serves it (a request being read is in progress)', async () => {
    const { address: path } = await s.start(
      async (_h, client) => {
        const body = await readAll(client);
        client.writeHead(200, { 'Content-Type': 'text/plain' });
        client.end(`got ${body.length}`);
      },
      { bodyTimeout: 0, shutdownTimeout: 3000 },
    );
    const f = front(path, Buffer.concat([head(1000), Buffer.alloc(10, 'a')]));
    await sleep(100);
    const closed = s.server.close();
    await sleep(400);
    f.socket.write(Buffer.alloc(990, 'b'));
    await closed;
    await Promise.race([f.done, sleep(2000)]);
    expect(f.data()).toMatch(/^Status: 200[\s\S]*got 1000$/);
  });
});

describe.each(TRANSPORTS)('a handler that reads its body late (%s transport)', (transport) => {
  const s = testServers({ transport });

  it('bodyTimeout counts only time spent waiting while the handler reads: a late reader of a body sent after the header is served', async () => {
    const { address: path } = await s.start(
      async (_h, client) => {
        await sleep(600);
        const body = await readAll(client);
        client.writeHead(200, { 'Content-Type': 'text/plain' });
        client.end(`got ${body.length}`);
      },
      { bodyTimeout: 300 },
    );
    const f = front(path, head(100));
    await sleep(50);
    f.socket.write(Buffer.alloc(100, 'b'));
    await Promise.race([f.done, sleep(3000)]);
    expect(f.data()).toMatch(/^Status: 200[\s\S]*got 100$/);
    expect(s.server.stats.timeouts).toBe(0);
  });

  it('a late reader of a body larger than its stream buffers is served too (the front is paused, not timed)', async () => {
    const size = 1024 * 1024;
    const { address: path } = await s.start(
      async (_h, client) => {
        await sleep(700);
        const body = await readAll(client);
        client.writeHead(200, { 'Content-Type': 'text/plain' });
        client.end(`got ${body.length}`);
      },
      { bodyTimeout: 300 },
    );
    const f = front(path, head(size));
    await sleep(50);
    f.socket.write(Buffer.alloc(size, 'b'));
    await Promise.race([f.done, sleep(4000)]);
    expect(f.data()).toMatch(/^Status: 200[\s\S]*got 1048576$/);
    expect(s.server.stats.timeouts).toBe(0);
  });

  it('a body that stops coming while the handler reads is still cut by bodyTimeout', async () => {
    let failure = '';
    const { address: path } = await s.start(
      async (_h, client) => {
        await sleep(100);
        await readAll(client).catch((e: ScgiError) => {
          failure = e.code;
        });
      },
      { bodyTimeout: 300 },
    );
    const f = front(path, Buffer.concat([head(100), Buffer.alloc(10, 'a')]));
    await Promise.race([f.done, sleep(3000)]);
    expect(f.closed).toBe(true);
    expect(failure).toBe('ERR_SCGI_BODY_TIMEOUT');
    expect(s.server.stats.timeouts).toBe(1);
  });
});

describe.each(TRANSPORTS)('a listener that throws (%s transport)', (transport) => {
  const s = testServers({ transport });

  it("a 'clientError' listener that throws (uncaughtException handled) loses no other request of the burst", async () => {
    const { address: path } = await s.start((_h, client) => {
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.end('ok');
    });
    s.server.on('clientError', () => {
      throw new Error('listener bug');
    });
    // Vitest's own handlers fail the run on an uncaught exception; for this
    // test the process handles them itself, as production code that logs does.
    const saved = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const caught: string[] = [];
    process.on('uncaughtException', (e) => caught.push(e.message));
    try {
      const fronts: Front[] = [];
      for (let i = 0; i < 20; i++) fronts.push(front(path));
      await Promise.all(fronts.map((f) => new Promise((r) => (f.socket.connecting ? f.socket.once('connect', r) : r(null)))));
      await sleep(50);
      fronts[0]!.socket.write('5:abcde;');
      for (const f of fronts.slice(1)) f.socket.write(head(0));
      await Promise.race([Promise.all(fronts.slice(1).map((f) => f.done)), sleep(3000)]);
      const answered = fronts.slice(1).filter((f) => f.data().startsWith('Status: 200')).length;
      expect(answered).toBe(19);
      expect(caught).toEqual(['listener bug']);
      for (const f of fronts) f.socket.destroy();
      await waitFor(async () => (await s.server.getConnections()) === 0, 2000);
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const l of saved) process.on('uncaughtException', l);
    }
  });
});

describe.each(TRANSPORTS)('errors reported once (%s transport)', (transport) => {
  const s = testServers({ transport });

  it('a requestTimeout while the handler awaits its body is reported once, as a timeout', async () => {
    const reported: string[] = [];
    const { address: path } = await s.start(
      async (_h, client) => {
        await readAll(client); // rejects with the timeout, and the handler lets it go
      },
      { requestTimeout: 200, bodyTimeout: 0, onError: (e) => reported.push((e as ScgiError).code ?? e.message) },
    );
    const f = front(path, Buffer.concat([head(100), Buffer.alloc(10, 'a')]));
    await Promise.race([f.done, sleep(3000)]);
    await sleep(50);
    expect(reported).toEqual(['ERR_SCGI_REQUEST_TIMEOUT']);
    expect(s.server.stats.timeouts).toBe(1);
    expect(s.server.stats.errors).toBe(0);
  });

  it('a bodyTimeout the handler rethrows is not counted again as a handler error', async () => {
    const reported: string[] = [];
    const { address: path } = await s.start(
      async (_h, client) => {
        await readAll(client);
      },
      { bodyTimeout: 200, onError: (e) => reported.push((e as ScgiError).code ?? e.message) },
    );
    const f = front(path, Buffer.concat([head(100), Buffer.alloc(10, 'a')]));
    await Promise.race([f.done, sleep(3000)]);
    await sleep(50);
    expect(reported).toEqual([]);
    expect(s.server.stats.timeouts).toBe(1);
    expect(s.server.stats.errors).toBe(0);
  });
});

describe.each(TRANSPORTS)('backpressure of the first write and of a corked batch (%s transport)', (transport) => {
  const s = testServers({ transport });

  for (const how of ['first write after writeHead', 'corked writes (_writev)'] as const) {
    it(`${how}: the callback waits until the front has read what the transport could not take`, async () => {
      const big = Buffer.alloc(4 * 1024 * 1024, 'x');
      let calledBack = false;
      let calledEarly: boolean | null = null;
      const { address: path } = await s.start((_h, client) => {
        client.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        const done = () => {
          calledBack = true;
          client.end();
        };
        if (how === 'first write after writeHead') {
          client.write(big, done);
        } else {
          client.write('a'); // the head and 'a' go out; the next two are one _writev
          client.cork();
          client.write(big);
          client.write(big, done);
          client.uncork();
        }
      });
      const f = front(path, head(0), { paused: true });
      await sleep(300);
      calledEarly = calledBack;
      f.socket.resume();
      await Promise.race([f.done, sleep(5000)]);
      expect(calledEarly).toBe(false);
      expect(calledBack).toBe(true);
    });
  }
});

describe.each(TRANSPORTS)('a large response to a slow reader (%s transport)', (transport) => {
  const s = testServers({ transport });
  const size = 8 * 1024 * 1024;
  const big = Buffer.alloc(size, 'z');

  /** The handler ends with 8 MiB; the front reads nothing for `stall` ms, then reads. */
  async function slowRead(options: ServeOptions, stall: number) {
    const reported: string[] = [];
    const { address: path } = await s.start(
      (_h, client) => {
        client.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        client.end(big);
      },
      { ...options, onError: (e) => reported.push((e as ScgiError).code) },
    );
    const f = front(path, head(0), { paused: true });
    await sleep(stall);
    f.socket.resume();
    await Promise.race([f.done, sleep(5000)]);
    return { f, reported };
  }

  it('drainTimeout starts once the last byte is written: a response the front takes longer to read arrives whole', async () => {
    const { f, reported } = await slowRead({ drainTimeout: 200 }, 600);
    expect(f.bytes()).toBeGreaterThan(size);
    expect(f.data()).toMatch(/^Status: 200/);
    expect(reported).toEqual([]);
    expect(s.server.stats.timeouts).toBe(0);
  });

  it('a response cut by requestTimeout while being written is counted and reported', async () => {
    const { f, reported } = await slowRead({ requestTimeout: 300 }, 800);
    expect(f.bytes()).toBeLessThan(size);
    expect(reported).toEqual(['ERR_SCGI_REQUEST_TIMEOUT']);
    expect(s.server.stats.timeouts).toBe(1);
    expect(s.server.stats.errors).toBe(0);
  });
});

describe.each(TRANSPORTS)('bytes past the body (%s transport)', (transport) => {
  const s = testServers({ transport });

  it('maxDrainSize applies after the response: bytes past the body before it do not cut the connection first', async () => {
    const { address: path } = await s.start(
      async (_h, client) => {
        const body = await readAll(client);
        await sleep(300);
        client.writeHead(200, { 'Content-Type': 'text/plain' });
        client.end(`got ${body.length}`);
      },
      { maxDrainSize: 1000 },
    );
    const f = front(path, Buffer.concat([head(10), Buffer.alloc(10, 'a'), Buffer.alloc(5000, 'x')]));
    await Promise.race([f.done, sleep(3000)]);
    expect(f.data()).toMatch(/^Status: 200[\s\S]*got 10$/);
    expect(f.closed).toBe(true);
  });
});

describe.each(TRANSPORTS)('what a long-lived request keeps alive (%s transport)', (transport) => {
  const s = testServers({ transport });

  it('long-polls that arrive while uploads stream keep their own bytes (headers and unread body), not the uploads', async () => {
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await sleep(20);
      }
      return process.memoryUsage().arrayBuffers;
    };
    const held: ScgiClient[] = [];
    let uploaded = 0;
    const { address: path } = await s.start(
      async (h: ScgiHeaders, client) => {
        if (h.get('REQUEST_URI') === '/poll') {
          held.push(client); // answered later: a long-poll
          return;
        }
        for await (const c of client) uploaded += (c as Buffer).length;
      },
      { onError: () => {}, bodyTimeout: 0 },
    );
    const before = await settle();
    const chunk = Buffer.alloc(256 * 1024, 'u');
    const uploads = [0, 1, 2].map(() => front(path, head(1 << 30)));
    let streaming = true;
    for (const u of uploads) {
      const pump = () => {
        while (streaming && !u.socket.destroyed && u.socket.write(chunk));
      };
      u.socket.on('drain', pump);
      pump();
    }
    const polls: Front[] = [];
    const N = 100;
    for (let i = 0; i < N; i++) {
      // Half of them with a small body the handler does not read (yet).
      const body = i % 2 === 0 ? '' : 'x'.repeat(16);
      polls.push(
        front(
          path,
          Buffer.concat([
            netstring(
              block([
                ['CONTENT_LENGTH', String(body.length)],
                ['SCGI', '1'],
                ['REQUEST_URI', '/poll'],
              ]),
            ),
            Buffer.from(body),
          ]),
        ),
      );
      await sleep(3);
    }
    await waitFor(() => held.length === N, 5000);
    streaming = false;
    for (const u of uploads) u.socket.destroy();
    await sleep(200);
    const during = await settle();
    expect(uploaded).toBeGreaterThan(1 << 20);
    // Each poll's own bytes are a few hundred; a view into its wake-up's batch kept the uploads' bytes too.
    expect(during - before).toBeLessThan(16 * 1024 * 1024);
    for (const c of held) {
      const body = (await readAll(c)).toString();
      c.writeHead(200, { 'Content-Type': 'text/plain' });
      c.end(`done ${body}`);
    }
    await Promise.race([Promise.all(polls.map((p) => p.done)), sleep(3000)]);
    // The copied bodies are the bytes that were sent.
    expect(polls.map((p, i) => p.data().startsWith('Status: 200') && p.data().endsWith(`done ${i % 2 === 0 ? '' : 'x'.repeat(16)}`))).toEqual(
      polls.map(() => true),
    );
  });
});

describe.runIf(TRANSPORTS.includes('native'))('which requests copy their bytes (native transport)', () => {
  const s = testServers({ transport: 'native' });

  it('only a request still running after its batch copies its headers; one answered within it keeps its view', async () => {
    const seen: { uri: string; h: ScgiHeaders; at: ArrayBufferLike }[] = [];
    const held: ScgiClient[] = [];
    const { address: path } = await s.start((h, client) => {
      const uri = h.get('REQUEST_URI')!;
      seen.push({ uri, h, at: h.rawValue(0).buffer });
      if (uri === '/hold') {
        held.push(client);
        return;
      }
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.end('ok');
    });
    const req = (uri: string) =>
      netstring(
        block([
          ['CONTENT_LENGTH', '0'],
          ['SCGI', '1'],
          ['REQUEST_URI', uri],
        ]),
      );
    const a = front(path, req('/now'));
    const b = front(path, req('/hold'));
    await waitFor(() => seen.length === 2 && a.closed);
    await sleep(20);
    const now = seen.find((x) => x.uri === '/now')!;
    const hold = seen.find((x) => x.uri === '/hold')!;
    expect(now.h.rawValue(0).buffer).toBe(now.at);
    expect(hold.h.rawValue(0).buffer).not.toBe(hold.at);
    expect(hold.h.get('REQUEST_URI')).toBe('/hold');
    held[0]!.writeHead(200, { 'Content-Type': 'text/plain' });
    held[0]!.end('ok');
    await Promise.race([b.done, sleep(2000)]);
    expect(b.data()).toMatch(/^Status: 200/);
  });
});
