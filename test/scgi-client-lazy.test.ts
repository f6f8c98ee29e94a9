/**
 * `ScgiClient` builds its Duplex state only on first use (src/connection/scgi-client.ts).
 * These tests pin both halves of that promise, on both transports and
 * in memory: a whole response does not build it, and whatever touches the
 * stream after things happened without it (body bytes pushed, the response
 * ended, the connection gone) sees them exactly as a Duplex built from the
 * start would.
 */
import { once } from 'node:events';
import { Duplex, PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { type Handler, inject, type ScgiClient } from '../src/index.ts';
import { request } from '../src/client/request.ts';
import { testServers, TRANSPORTS } from './helpers.ts';

const built = (client: ScgiClient): boolean => Object.hasOwn(client, '_readableState') || Object.hasOwn(client, '_writableState');

describe('in memory (inject)', () => {
  it('a whole response (writeHead + end, or end of raw bytes) never builds the stream state', async () => {
    const seen: boolean[] = [];
    const clients: ScgiClient[] = [];
    const viaHead: Handler = (_h, client) => {
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.end('hi');
      clients.push(client);
    };
    const raw: Handler = (_h, client) => {
      client.end(Buffer.from('Status: 200 OK\r\nContent-Length: 2\r\n\r\nok'));
      clients.push(client);
    };
    const a = await inject(viaHead, { uri: '/', body: 'unread body' });
    const b = await inject(raw);
    expect(a.status).toBe(200);
    expect(a.body.toString()).toBe('hi');
    expect(a.headers['content-length']).toBe('2');
    expect(b.body.toString()).toBe('ok');
    // After the connections closed too (the lifecycle destroyed both clients).
    for (const c of clients) seen.push(built(c));
    expect(seen).toEqual([false, false]);
  });

  it('is a Duplex, a Readable and a Writable to instanceof checks', async () => {
    const res = await inject((_h, client) => {
      const checks = [client instanceof Duplex, client instanceof Readable, client instanceof Writable];
      client.end(`Status: 200 OK\r\n\r\n${checks.join(',')}`);
    });
    expect(res.body.toString()).toBe('true,true,true');
  });

  it("listeners added after a whole response still get 'finish' and 'close'", async () => {
    let events: Promise<string[]> | null = null;
    await inject((_h, client) => {
      client.end('Status: 200 OK\r\n\r\nx');
      const got: string[] = [];
      events = new Promise((resolve) => {
        client.on('finish', () => got.push('finish'));
        client.on('close', () => {
          got.push('close');
          resolve(got);
        });
      });
      expect(client.writableEnded).toBe(true);
    });
    expect(await events).toEqual(['finish', 'close']);
  });

  it('listeners added without building the state (prependListener) are kept, and get their events', async () => {
    let events: Promise<string[]> | null = null;
    const res = await inject(
      (_h, client) => {
        const got: string[] = [];
        events = new Promise((resolve) => {
          // At 'finish' the connection is still there (it is not a replay at its close).
          client.prependListener('finish', () => got.push(`finish ${client.destroyed}`));
          client.prependListener('close', () => resolve(got));
        });
        client.end('Status: 200 OK\r\n\r\nok');
      },
      { body: 'payload' },
    );
    expect(res.body.toString()).toBe('ok');
    expect(await events).toEqual(['finish false']);
  });

  it('a handler that touches the client only after it was destroyed sees it destroyed', async () => {
    let late: Promise<{ destroyed: boolean; writable: boolean; error: unknown }> | null = null;
    await expect(
      inject((_h, client) => {
        client.destroy();
        late = (async () => {
          await sleep(5);
          let error: unknown = null;
          client.on('error', (e) => (error = e));
          client.end('Status: 200 OK\r\n\r\ntoo late'); // nothing is sent
          await sleep(5);
          return { destroyed: client.destroyed, writable: client.writable, error };
        })();
      }),
    ).rejects.toMatchObject({ code: 'ERR_SCGI_NO_RESPONSE' });
    expect(await late!).toEqual({ destroyed: true, writable: false, error: null });
  });
});

describe.each(TRANSPORTS)('%s transport', (transport) => {
  const { start } = testServers({ transport });

  it('a body read late, after more than the high-water mark waited unread, arrives whole and in order', async () => {
    const body = Buffer.alloc(300 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >>> 11)) & 0xff;
    const { address } = await start(async (_h, client) => {
      await sleep(50); // the body comes in meanwhile, with nothing reading it
      const chunks: Buffer[] = [];
      for await (const c of client) chunks.push(c as Buffer);
      const got = Buffer.concat(chunks);
      client.end(`Status: 200 OK\r\n\r\n${got.length} ${got.equals(body)}`);
    });
    const res = await request(address, { method: 'POST', body });
    expect(res.body.toString()).toBe(`${body.length} true`);
  });

  it('pipeline() into the client after writeHead streams the response', async () => {
    const { address } = await start(async (_h, client) => {
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      const src = new PassThrough();
      const done = pipeline(src, client);
      for (let i = 0; i < 5; i++) src.write(`part ${i}\n`);
      src.end();
      await done;
    });
    const res = await request(address);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('part 0\npart 1\npart 2\npart 3\npart 4\n');
  });

  it("'close' on a client built after a whole response follows the end of the connection", async () => {
    let closed: Promise<unknown> | null = null;
    const { address } = await start((_h, client) => {
      client.end('Status: 200 OK\r\n\r\nbye');
      closed = once(client, 'close');
    });
    const res = await request(address);
    expect(res.body.toString()).toBe('bye');
    await closed;
  });
});
