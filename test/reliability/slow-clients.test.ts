// Slow and idle clients (slowloris): hundreds of connections that send
// nothing, or one byte a second, are closed at headerTimeout while normal
// requests keep being served; maxConnections answers 503 and recovers.
// Behaviour only: timings are in bench/slowloris.ts.
import { describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import type { ScgiError } from '../../src/errors.ts';
import type { ScgiServer } from '../../src/index.ts';
import { encodeRequest } from '../../src/client/request.ts';
import { scgiRequest, waitFor, type Target, testServers } from '../helpers.ts';
import { noConnectionsLeft, sleep, spyOnProcessErrors } from './util.ts';

spyOnProcessErrors();
const pool = testServers({ onError: () => {} }, 'scgi-slow-');

const HEADER_TIMEOUT = 1000;

interface Attacker {
  socket: Socket;
  opened: number;
  closedAt: number | null;
  received: number;
  stop(): void;
}

/** Open one attacking connection: silent, or trickling `trickle` one byte a second. */
function attack(target: Target, trickle: Buffer | null): Promise<Attacker> {
  return new Promise((resolve, reject) => {
    const socket = connect(target as never);
    let timer: NodeJS.Timeout | null = null;
    const a: Attacker = {
      socket,
      opened: 0,
      closedAt: null,
      received: 0,
      stop: () => {
        if (timer !== null) clearInterval(timer);
        timer = null;
      },
    };
    socket.on('data', (c: Buffer) => (a.received += c.length));
    socket.on('error', () => {});
    socket.on('close', () => {
      a.closedAt = Date.now();
      a.stop();
    });
    socket.once('connect', () => {
      a.opened = Date.now();
      if (trickle !== null) {
        let i = 0;
        socket.write(trickle.subarray(i, ++i));
        timer = setInterval(() => {
          if (!socket.destroyed && i < trickle.length) socket.write(trickle.subarray(i, ++i));
        }, 1000);
      }
      resolve(a);
    });
    socket.once('error', reject);
  });
}

/** Open `n` attackers in batches (the listen backlog is finite), half silent, half trickling. */
async function openAttackers(target: Target, n: number): Promise<Attacker[]> {
  const trickle = encodeRequest({ uri: '/slowloris' });
  const all: Attacker[] = [];
  for (let i = 0; i < n; i += 50) {
    all.push(...(await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => attack(target, (i + k) % 2 ? trickle : null)))));
  }
  return all;
}

/** Normal requests, `concurrency` at a time, until `stop()`; every result recorded. */
function steadyLoad(target: Target, concurrency: number) {
  const results: { status: number; error: string | null; body: string }[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async (_, k) => {
    for (let i = 0; running; i++) {
      const uri = `/normal/${k}/${i}`;
      try {
        const res = await scgiRequest(target, { uri });
        results.push({ status: res.status, error: res.error, body: res.body.toString() === `hello ${uri}` ? 'ok' : res.body.toString() });
      } catch (err) {
        results.push({ status: 0, error: String(err), body: '' });
      }
      await sleep(5);
    }
  });
  return {
    results,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

const hello = (headers: import('../../src/index.ts').ScgiHeaders, client: import('../../src/index.ts').ScgiClient) => {
  client.writeHead(200, { 'Content-Type': 'text/plain' });
  client.end(`hello ${headers.get('REQUEST_URI')}`);
};

function timeoutCodes(server: ScgiServer): string[] {
  const codes: string[] = [];
  server.on('clientError', (err: ScgiError) => codes.push(err.code));
  return codes;
}

describe('slowloris', () => {
  it('500 silent or 1-byte-a-second connections are closed at headerTimeout; normal requests all succeed meanwhile', async () => {
    const { server, target } = await pool.start(hello, { headerTimeout: HEADER_TIMEOUT });
    const codes = timeoutCodes(server);
    const load = steadyLoad(target, 4);
    let peak = 0;
    const poll = setInterval(() => void server.getConnections().then((n) => (peak = Math.max(peak, n))), 20);
    const attackers = await openAttackers(target, 500);
    await waitFor(() => attackers.every((a) => a.closedAt !== null), 20_000, 50);
    clearInterval(poll);
    console.log(`slowloris: ${peak} connections open at the peak, ${load.results.length} normal requests served meanwhile`);
    // keep the load going a moment after the attack too
    const during = load.results.length;
    await sleep(200);
    await load.stop();
    for (const a of attackers) a.stop();

    expect(load.results.filter((r) => r.status !== 200 || r.error !== null || r.body !== 'ok')).toEqual([]);
    expect(during).toBeGreaterThan(0);
    expect(load.results.length).toBeGreaterThan(during);
    // every attacker closed by the server, for the documented reason, never before headerTimeout
    expect(attackers.every((a) => a.received === 0)).toBe(true);
    expect(Math.min(...attackers.map((a) => a.closedAt! - a.opened))).toBeGreaterThanOrEqual(HEADER_TIMEOUT - 50);
    expect(server.stats.timeouts).toBe(500);
    expect(codes.filter((c) => c === 'ERR_SCGI_HEADER_TIMEOUT')).toHaveLength(500);
    expect(codes.filter((c) => c !== 'ERR_SCGI_HEADER_TIMEOUT')).toEqual([]);
    expect(server.stats.rejected).toBe(0); // timeouts are counted as timeouts
    await noConnectionsLeft(server);
  });

  it('a trickle that completes its header in time is served', async () => {
    const { server, target } = await pool.start(hello, { headerTimeout: 5000 });
    const bytes = encodeRequest({ uri: '/trickled' });
    const pieces = Array.from({ length: 10 }, (_, i) => bytes.subarray(Math.floor((i * bytes.length) / 10), Math.floor(((i + 1) * bytes.length) / 10)));
    const socket = connect(target as never);
    const got: Buffer[] = [];
    socket.on('data', (c) => got.push(c));
    const closed = new Promise((r) => socket.on('close', r));
    for (const p of pieces) {
      socket.write(p);
      await sleep(20);
    }
    await closed;
    expect(Buffer.concat(got).toString()).toMatch(/^Status: 200 OK[\s\S]*hello \/trickled$/);
    expect(server.stats.timeouts).toBe(0);
  });
});

describe('maxConnections', () => {
  it('idle connections fill maxConnections: new ones get Status: 503; once headerTimeout closes them, requests succeed', async () => {
    const { server, target } = await pool.start(hello, { maxConnections: 20, headerTimeout: HEADER_TIMEOUT });
    const attackers = await openAttackers(target, 20);
    await waitFor(async () => (await server.getConnections()) === 20);
    const over = await Promise.all(Array.from({ length: 5 }, () => scgiRequest(target, {})));
    expect(over.map((r) => r.status)).toEqual(Array(5).fill(503));
    expect(over[0]!.body.toString()).toMatch(/Service Unavailable/);
    expect(server.stats.overloaded).toBe(5);
    await waitFor(() => attackers.every((a) => a.closedAt !== null), 10_000);
    await noConnectionsLeft(server);
    const after = await Promise.all(Array.from({ length: 10 }, (_, i) => scgiRequest(target, { uri: `/after/${i}` })));
    expect(after.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(server.stats.overloaded).toBe(5);
  });

  it('connections freed by their clients: the server recovers at once', async () => {
    const { server, target } = await pool.start(hello, { maxConnections: 10, headerTimeout: 60_000 });
    const attackers = await openAttackers(target, 10);
    await waitFor(async () => (await server.getConnections()) === 10);
    expect((await scgiRequest(target, {})).status).toBe(503);
    for (const a of attackers) {
      a.stop();
      a.socket.destroy();
    }
    await noConnectionsLeft(server);
    expect((await scgiRequest(target, { uri: '/back' })).body.toString()).toBe('hello /back');
    // 503s do not pile up as open connections either
    await Promise.all(Array.from({ length: 30 }, () => scgiRequest(target, {})));
    await noConnectionsLeft(server);
  });

  it('a 503 to a front that also sends a body: drained, the 503 arrives whole (no reset)', async () => {
    const { server, target } = await pool.start(hello, { maxConnections: 1, headerTimeout: 60_000 });
    const [holder] = await openAttackers(target, 1);
    await waitFor(async () => (await server.getConnections()) === 1);
    const res = await scgiRequest(target, { body: Buffer.alloc(512 * 1024, 'x') });
    expect(res.status).toBe(503);
    expect(res.error).toBe(null);
    holder!.socket.destroy();
    await noConnectionsLeft(server);
  });
});
