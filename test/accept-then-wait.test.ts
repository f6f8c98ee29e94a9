/**
 * A request whose whole header came with the connection is handed to the
 * handler at once; what comes after (the rest of its body, or the front
 * going away) must still be seen when the handler has not answered within
 * that first call. On the native transport over a unix socket such a
 * connection joins the epoll set only after JavaScript has had its request
 * (`add_conn` / `register_deferred` in crates/scgi-napi/src/transport/engine.rs):
 * these fail if it never joins. Both transports, unix sockets.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { block, netstring, testServers, TRANSPORTS } from './helpers.ts';

function header(contentLength: number): Buffer {
  return netstring(
    block([
      ['CONTENT_LENGTH', String(contentLength)],
      ['SCGI', '1'],
      ['REQUEST_URI', '/x'],
    ]),
  );
}

/**
 * A front in a worker thread: it connects and writes `first`, and this
 * thread waits (blocked, its event loop stalled) until those bytes are in
 * the socket, so the server accepts a connection whose request is already
 * there. Then `'rest'` writes `rest`, `'close'` destroys the socket; what the
 * server answers comes back as the worker's message.
 */
function front(address: string, first: Buffer, rest: Buffer): Worker {
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { workerData, parentPort } = require('node:worker_threads');
    const { connect } = require('node:net');
    const { address, first, rest, signal } = workerData;
    const sock = connect(address);
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => parentPort.postMessage(Buffer.concat(chunks).toString()));
    sock.on('error', () => {});
    sock.write(Buffer.from(first), () => { Atomics.store(signal, 0, 1); Atomics.notify(signal, 0); });
    parentPort.on('message', (m) => {
      if (m === 'rest') sock.write(Buffer.from(rest));
      else { sock.destroy(); parentPort.close(); }
    });`,
    { eval: true, workerData: { address, first, rest, signal } },
  );
  if (Atomics.wait(signal, 0, 0, 5000) === 'timed-out') throw new Error('the front did not write');
  return worker;
}

describe.each(TRANSPORTS)('%s transport', (transport) => {
  const each = testServers({ transport });
  const start = (handler: Parameters<typeof each.start>[0]) => each.start(handler, { requestTimeout: 60_000 });

  it("a handler still waiting sees the front go away ('close'), long before requestTimeout", async () => {
    let closed: Promise<unknown> | null = null;
    let handled: () => void = () => {};
    const inHandler = new Promise<void>((resolve) => (handled = resolve));
    const { address } = await start((_h, client) => {
      closed = once(client, 'close');
      handled();
      // never answers
    });
    const worker = front(address, header(0), Buffer.alloc(0));
    await inHandler;
    await new Promise((r) => setTimeout(r, 20)); // the handler's call is over
    worker.postMessage('close');
    await closed;
    expect(each.server.stats.requests).toBe(1);
    await worker.terminate();
  });

  it('the rest of a body sent after the handler started arrives', async () => {
    const body = Buffer.alloc(200_000, 7);
    let handled: () => void = () => {};
    const inHandler = new Promise<void>((resolve) => (handled = resolve));
    const { address } = await start(async (_h, client) => {
      handled();
      let n = 0;
      for await (const c of client) n += (c as Buffer).length;
      client.end(`Status: 200 OK\r\n\r\n${n}`);
    });
    const worker = front(address, Buffer.concat([header(body.length), body.subarray(0, 10)]), body.subarray(10));
    const answer = once(worker, 'message');
    await inHandler;
    await new Promise((r) => setTimeout(r, 20));
    worker.postMessage('rest');
    expect(((await answer) as string[])[0]).toBe(`Status: 200 OK\r\n\r\n${body.length}`);
    await worker.terminate();
  });
});
