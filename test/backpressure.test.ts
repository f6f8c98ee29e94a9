// Backpressure over real unix sockets, both directions, seen from the
// outside: a front that does not read makes the handler wait (its write()
// returns false, then 'drain' comes once the front reads), with the bytes held
// in the server's memory bounded; a body the handler does not read stays in
// the kernel (the server reads only a bounded part of it), and all of it
// arrives once the handler reads. The same through scgi/http and scgi/fetch.
//
// No wall-clock bound decides a result: "the handler waits" is the first
// write() that returns false (or the adapter waiting for 'drain'), raced
// against the handler writing the whole response while the front reads
// nothing, which the kernel buffers cannot hold.
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fromFetch } from '../src/adapters/fetch.ts';
import { fromNodeListener } from '../src/adapters/http.ts';
import type { Handler, ScgiClient } from '../src/index.ts';
import { block, netstring, testServers } from './helpers.ts';

// The net transport: these tests look at the server side's net.Socket
// (its writableLength and bytesRead). The native transport's bounds are
// tested in test/native-engine.test.ts and test/transport-native.test.ts.
const servers = testServers({ onError: () => {}, transport: 'net' }, 'scgi-backpressure-');
const fronts: Socket[] = [];
afterEach(() => {
  for (const s of fronts.splice(0)) s.destroy();
});

/** Much more than the kernel buffers of a unix socket pair hold (a few hundred KiB). */
const TOTAL = 32 * 1024 * 1024;
const CHUNK = 64 * 1024;
/** Most response bytes the server may hold in memory for one slow front. */
const BOUND = 1024 * 1024;

/** The server side of the one connection each test makes (the net.Server's accepted socket). */
let accepted: Socket | null = null;
async function start(handler: Handler): Promise<string> {
  const { server, address } = await servers.start(handler);
  accepted = null;
  server.server!.on('connection', (s: Socket) => (accepted = s));
  return address;
}

function request(contentLength: number, uri = '/'): Buffer {
  return netstring(
    block([
      ['CONTENT_LENGTH', String(contentLength)],
      ['SCGI', '1'],
      ['REQUEST_METHOD', contentLength > 0 ? 'POST' : 'GET'],
      ['REQUEST_URI', uri],
    ]),
  );
}

/** A front that sends `head` and reads nothing until `read()` is called. */
function slowFront(path: string, head: Buffer): { socket: Socket; read(): Promise<Buffer> } {
  const socket = connect({ path });
  fronts.push(socket);
  socket.pause();
  socket.write(head);
  return {
    socket,
    read: () =>
      new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.once('error', reject);
        socket.once('end', () => resolve(Buffer.concat(chunks)));
        socket.resume();
      }),
  };
}

/** The body of a CGI response (what follows the blank line). */
function bodyOf(response: Buffer): Buffer {
  const end = response.indexOf('\r\n\r\n');
  expect(end).toBeGreaterThan(0);
  return response.subarray(end + 4);
}

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Watch what the application hands to `client` (the ScgiClient) while the
 * front reads nothing: the most bytes held in the server's memory (the
 * client's queue plus the socket's), and the first time the writer waits for
 * 'drain' after a write() returned false.
 */
function watchWrites(client: ScgiClient) {
  const stats = { written: 0, maxHeld: 0, falseReturns: 0, drains: 0 };
  const waiting = deferred<{ written: number; held: number }>();
  const held = () => client.writableLength + accepted!.writableLength;
  const write = client.write.bind(client) as (...args: unknown[]) => boolean;
  client.write = ((...args: unknown[]) => {
    const ok = write(...args);
    const chunk = args[0] as { length?: number } | null;
    stats.written += chunk?.length ?? 0;
    stats.maxHeld = Math.max(stats.maxHeld, held());
    if (!ok) {
      stats.falseReturns++;
      // The writer saw false: by the next turn of the event loop it either waits
      // for 'drain' (a listener besides ours is there) or has written on regardless.
      const before = stats.written;
      setImmediate(() => {
        if (stats.written === before && client.listenerCount('drain') > 1) waiting.resolve({ written: stats.written, held: held() });
      });
    }
    return ok;
  }) as typeof client.write;
  client.on('drain', () => stats.drains++);
  return { stats, waiting: waiting.promise };
}

describe('response backpressure: a front that does not read', () => {
  it('a handler looping on write() sees false, waits for drain, and the server holds a bounded number of bytes', async () => {
    const waiting = deferred<{ written: number; held: number }>();
    const finished = deferred<'finished'>();
    let maxHeld = 0;
    let falseReturns = 0;
    let drains = 0;
    const path = await start(async (_headers, client) => {
      client.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(TOTAL) });
      client.on('drain', () => drains++);
      const chunk = Buffer.alloc(CHUNK, 'x');
      for (let written = 0; written < TOTAL; ) {
        const ok = client.write(chunk);
        written += CHUNK;
        maxHeld = Math.max(maxHeld, client.writableLength + accepted!.writableLength);
        if (!ok) {
          falseReturns++;
          waiting.resolve({ written, held: client.writableLength + accepted!.writableLength });
          await new Promise((r) => client.once('drain', r));
        }
      }
      finished.resolve('finished');
      client.end();
    });
    const front = slowFront(path, request(0));
    // The whole response cannot fit in the kernel: a handler that is never told
    // to wait writes all of it into the server's memory before anyone reads.
    const first = await Promise.race([waiting.promise, finished.promise]);
    expect(first).not.toBe('finished');
    const stalled = first as { written: number; held: number };
    expect(stalled.written).toBeLessThan(TOTAL);
    expect(stalled.held).toBeLessThanOrEqual(BOUND);

    const body = bodyOf(await front.read());
    expect(body.length).toBe(TOTAL);
    expect(await finished.promise).toBe('finished');
    expect(falseReturns).toBeGreaterThan(0);
    expect(drains).toBeGreaterThanOrEqual(falseReturns);
    expect(maxHeld).toBeLessThanOrEqual(BOUND);
  });

  it('scgi/http: res.write() returns false and the listener gets drain, the server holding a bounded number of bytes', async () => {
    let watched: ReturnType<typeof watchWrites> | null = null;
    const watching = deferred<ReturnType<typeof watchWrites>>();
    const finished = deferred<'finished'>();
    let resFalse = 0;
    let resDrains = 0;
    const listener = fromNodeListener(async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': TOTAL });
      res.on('drain', () => resDrains++);
      const chunk = Buffer.alloc(CHUNK, 'h');
      for (let written = 0; written < TOTAL; written += CHUNK) {
        if (!res.write(chunk)) {
          resFalse++;
          await new Promise((r) => res.once('drain', r));
        }
      }
      finished.resolve('finished');
      res.end();
    });
    const path = await start((headers, client) => {
      watched = watchWrites(client);
      watching.resolve(watched);
      return listener(headers, client);
    });
    const front = slowFront(path, request(0));
    const w = await watching.promise;
    const first = await Promise.race([w.waiting, finished.promise]);
    expect(first).not.toBe('finished');
    expect((first as { written: number }).written).toBeLessThan(TOTAL);

    const body = bodyOf(await front.read());
    expect(body.length).toBe(TOTAL);
    expect(await finished.promise).toBe('finished');
    expect(resFalse).toBeGreaterThan(0);
    expect(resDrains).toBeGreaterThanOrEqual(resFalse);
    expect(watched!.stats.maxHeld).toBeLessThanOrEqual(BOUND);
  });

  it('scgi/fetch: the Response body stream is pulled only as the front reads, the server holding a bounded number of bytes', async () => {
    const watching = deferred<ReturnType<typeof watchWrites>>();
    const finished = deferred<'finished'>();
    let pulled = 0;
    const handler = fromFetch(() => {
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulled >= TOTAL) {
            finished.resolve('finished');
            controller.close();
            return;
          }
          controller.enqueue(new Uint8Array(CHUNK).fill(0x66));
          pulled += CHUNK;
        },
      });
      return new Response(stream, { headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(TOTAL) } });
    });
    const path = await start((headers, client) => {
      watching.resolve(watchWrites(client));
      return handler(headers, client);
    });
    const front = slowFront(path, request(0));
    const w = await watching.promise;
    const first = await Promise.race([w.waiting, finished.promise]);
    expect(first).not.toBe('finished');
    expect(pulled).toBeLessThan(TOTAL);

    const body = bodyOf(await front.read());
    expect(body.length).toBe(TOTAL);
    expect(w.stats.falseReturns).toBeGreaterThan(0);
    expect(w.stats.drains).toBeGreaterThan(0);
    expect(w.stats.maxHeld).toBeLessThanOrEqual(BOUND);
  });
});

describe('request-body backpressure: a handler that does not read', () => {
  it('the server reads a bounded part of a large body from the kernel, and all of it once the handler reads', async () => {
    const body = Buffer.alloc(TOTAL);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
    const called = deferred<ScgiClient>();
    const readNow = deferred<void>();
    const path = await start(async (_headers, client) => {
      called.resolve(client);
      await readNow.promise;
      const hash = createHash('sha256');
      let length = 0;
      for await (const chunk of client) {
        hash.update(chunk);
        length += chunk.length;
      }
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.end(`${length} ${hash.digest('hex')}`);
    });
    const front = connect({ path });
    fronts.push(front);
    front.pause();
    let flushed = false;
    front.write(Buffer.concat([request(TOTAL), body]), () => (flushed = true));
    const client = await called.promise;
    const socket = accepted!;
    // Wait until the server stops taking bytes: both ends run on this event
    // loop, so while the server reads, every turn moves bytes; ten turns with
    // no progress mean it has stopped. A server that never stops reads the
    // whole body, and the front's write completes.
    let last = -1;
    let still = 0;
    while (!flushed && still < 10) {
      await new Promise((r) => setTimeout(r, 10));
      if (socket.bytesRead === last) still++;
      else {
        still = 0;
        last = socket.bytesRead;
      }
    }
    expect(flushed).toBe(false);
    expect(socket.bytesRead).toBeLessThanOrEqual(BOUND);
    expect(client.readableLength).toBeLessThanOrEqual(BOUND);

    readNow.resolve();
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      front.on('data', (c: Buffer) => chunks.push(c));
      front.once('error', reject);
      front.once('end', () => resolve(Buffer.concat(chunks)));
      front.resume();
    });
    expect(bodyOf(reply).toString()).toBe(`${TOTAL} ${createHash('sha256').update(body).digest('hex')}`);
    expect(flushed).toBe(true);
  });
});
