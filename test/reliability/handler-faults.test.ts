// Handler faults: throws, rejections, a throw after part of the response,
// handlers that never end, ignore the body, or write after the front went
// away. Each is followed by a request that succeeds; no exception reaches the
// process; no connection is left. The same faults through a real nginx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { ScgiError } from '../../src/errors.ts';
import { serve, type Handler, type ScgiServer } from '../../src/index.ts';
import { encodeRequest } from '../../src/client/request.ts';
import { bigBody, exchange, scgiRequest, tempDir, waitFor, type Target, testServers } from '../helpers.ts';
import { startNginx, unixLocation, type Nginx } from '../fronts/nginx.ts';
import { noConnectionsLeft, sleep, spyOnProcessErrors } from './util.ts';

spyOnProcessErrors();
const pool = testServers({ onError: () => {} }, 'scgi-faults-');

/** Faults by REQUEST_URI; anything else answers 200 "fine <uri>". */
function faulty(events: string[]): Handler {
  return async (headers, client) => {
    const uri = headers.get('REQUEST_URI') ?? '/';
    client.on('close', () => events.push(`close ${uri}`));
    switch (uri) {
      case '/throw':
        throw new Error('sync throw');
      case '/throw-string':
        throw 'not an Error';
      case '/reject':
        await sleep(5);
        throw new Error('async rejection');
      case '/partial-throw':
        client.writeHead(200, { 'Content-Type': 'text/plain' });
        client.write('partial ');
        await sleep(10);
        throw new Error('after a partial write');
      case '/partial-throw-cl':
        client.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '100' });
        client.write('partial ');
        await sleep(10);
        throw new Error('after a partial write');
      case '/never':
        return new Promise(() => {}); // never answers
      case '/never-after-partial':
        client.write('Status: 200 OK\r\n\r\nstarted');
        return new Promise(() => {});
      case '/ignore-body':
        client.end('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nignored the body');
        return;
      case '/destroy':
        client.destroy(new Error('handler destroyed its client'));
        return;
      case '/end-twice':
        client.end('Status: 200 OK\r\n\r\nonce');
        client.end();
        client.write('after end'); // ERR_STREAM_WRITE_AFTER_END on the client: must not crash
        return;
      case '/write-after-gone': {
        client.write('Status: 200 OK\r\n\r\nfirst');
        await new Promise((r) => client.once('close', r));
        const results: unknown[] = [];
        results.push(client.write('after close'));
        await new Promise<void>((r) =>
          client.write('with callback', (err?: Error | null) => {
            results.push(err?.message ?? null);
            r();
          }),
        );
        client.end('end after close');
        events.push(`wrote after close: ${JSON.stringify(results)}`);
        return;
      }
      case '/throw-after-gone':
        await new Promise((r) => client.once('close', r));
        throw new Error('thrown after the front left');
    }
    let n = 0;
    for await (const c of client) n += (c as Buffer).length;
    client.writeHead(200, { 'Content-Type': 'text/plain', 'X-Body': String(n) });
    client.end(`fine ${uri}`);
  };
}

async function startFaulty(options: Parameters<typeof pool.start>[1] = {}) {
  const events: string[] = [];
  const errors: string[] = [];
  const { server, target } = await pool.start(faulty(events), {
    onError: (err) => errors.push(`${(err as ScgiError).code ?? err.name}: ${err.message}`),
    ...options,
  });
  return { server, target, events, errors };
}

async function nextServed(target: Target, server: ScgiServer) {
  const res = await scgiRequest(target, { uri: '/ok', body: 'xyz' });
  expect(res.status).toBe(200);
  expect(res.body.toString()).toBe('fine /ok');
  expect(res.headers['x-body']).toBe('3');
  await noConnectionsLeft(server);
}

describe('handler faults, over a raw socket', () => {
  it('sync throw → Status: 500, onError, next request fine', async () => {
    const s = await startFaulty();
    const res = await scgiRequest(s.target, { uri: '/throw' });
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe('Internal Server Error\n');
    expect(s.errors).toEqual(['Error: sync throw']);
    expect(s.server.stats.errors).toBe(1);
    await nextServed(s.target, s.server);
  });

  it('throwing a non-Error → 500, reported as ERR_SCGI_HANDLER', async () => {
    const s = await startFaulty();
    expect((await scgiRequest(s.target, { uri: '/throw-string' })).status).toBe(500);
    expect(s.errors).toEqual(['ERR_SCGI_HANDLER: handler failed with not an Error']);
    await nextServed(s.target, s.server);
  });

  it('async rejection → 500, next request fine', async () => {
    const s = await startFaulty();
    expect((await scgiRequest(s.target, { uri: '/reject' })).status).toBe(500);
    expect(s.errors).toEqual(['Error: async rejection']);
    await nextServed(s.target, s.server);
  });

  it('throw after a partial write → the connection is cut (the front sees it incomplete), next request fine', async () => {
    const s = await startFaulty();
    const ex = await exchange(s.target, encodeRequest({ uri: '/partial-throw' }));
    expect(ex.closed).toBe(true);
    // the head and the partial body went out, nothing claims it is complete
    expect(ex.data.toString()).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial ');
    expect(s.errors).toEqual(['Error: after a partial write']);
    await nextServed(s.target, s.server);
  });

  it('a handler that never ends is closed at requestTimeout (before or after writing), next request fine', async () => {
    const s = await startFaulty({ requestTimeout: 300 });
    const [a, b] = await Promise.all([
      exchange(s.target, encodeRequest({ uri: '/never' }), { timeout: 10_000 }),
      exchange(s.target, encodeRequest({ uri: '/never-after-partial' }), { timeout: 10_000 }),
    ]);
    expect(a.closed && b.closed).toBe(true);
    expect(a.data.length).toBe(0);
    expect(b.data.toString()).toBe('Status: 200 OK\r\n\r\nstarted');
    expect(s.errors.sort()).toEqual(Array(2).fill('ERR_SCGI_REQUEST_TIMEOUT: the handler did not finish within requestTimeout'));
    expect(s.server.stats.timeouts).toBe(2);
    await waitFor(() => s.events.includes('close /never') && s.events.includes('close /never-after-partial'));
    await nextServed(s.target, s.server);
  });

  it('a handler that ignores a 3 MiB body: the body is drained, the response arrives whole with no reset', async () => {
    const s = await startFaulty();
    for (let i = 0; i < 3; i++) {
      const ex = await exchange(s.target, encodeRequest({ uri: '/ignore-body', body: bigBody() }), { timeout: 10_000 });
      expect(ex.error).toBe(null);
      expect(ex.data.toString()).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nignored the body');
    }
    await nextServed(s.target, s.server);
  });

  it('a body bigger than maxDrainSize that nobody reads: cut after the response, no crash', async () => {
    const s = await startFaulty({ maxDrainSize: 64 * 1024 });
    const ex = await exchange(s.target, encodeRequest({ uri: '/ignore-body', body: bigBody() }), { timeout: 10_000 });
    expect(ex.data.toString()).toMatch(/^Status: 200 OK/);
    await noConnectionsLeft(s.server);
    await nextServed(s.target, s.server);
  });

  it('a handler that destroys its client with an error: the connection closes, onError, next fine', async () => {
    const s = await startFaulty();
    const ex = await exchange(s.target, encodeRequest({ uri: '/destroy' }));
    expect(ex.closed).toBe(true);
    expect(ex.data.length).toBe(0);
    await nextServed(s.target, s.server);
  });

  it('end() twice and a write after end: the first response stands, no crash', async () => {
    const s = await startFaulty();
    const ex = await exchange(s.target, encodeRequest({ uri: '/end-twice' }));
    expect(ex.data.toString()).toBe('Status: 200 OK\r\n\r\nonce');
    await nextServed(s.target, s.server);
  });

  it('writes after the front went away: ignored (false / an error to the callback), no unhandled error', async () => {
    const s = await startFaulty();
    const socket = connect(s.target as never);
    socket.on('error', () => {});
    socket.write(encodeRequest({ uri: '/write-after-gone' }));
    await new Promise((r) => socket.once('data', r));
    socket.destroy();
    await waitFor(() => s.events.some((e) => e.startsWith('wrote after close')));
    expect(s.events.find((e) => e.startsWith('wrote after close'))).toMatch(/^wrote after close: \[false,"[^"]+"\]$/);
    await nextServed(s.target, s.server);
  });

  it('a throw after the front went away: reported, nothing written, no crash', async () => {
    const s = await startFaulty();
    const socket = connect(s.target as never);
    socket.on('error', () => {});
    socket.write(encodeRequest({ uri: '/throw-after-gone' }));
    await waitFor(() => s.server.stats.requests === 1);
    socket.destroy();
    await waitFor(() => s.errors.length === 1);
    expect(s.errors).toEqual(['Error: thrown after the front left']);
    await nextServed(s.target, s.server);
  });

  it('an onError that throws does not take the server down', async () => {
    const { server, target } = await pool.start(faulty([]), {
      onError: () => {
        throw new Error('onError itself failed');
      },
    });
    expect((await scgiRequest(target, { uri: '/throw' })).status).toBe(500);
    expect((await scgiRequest(target, { uri: '/reject' })).status).toBe(500);
    await nextServed(target, server);
  });

  it('every fault at once, concurrently with normal requests: all normal requests succeed', async () => {
    const s = await startFaulty({ requestTimeout: 500 });
    const faults = ['/throw', '/reject', '/partial-throw', '/never', '/ignore-body', '/destroy', '/end-twice', '/throw-string'];
    const all = await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => exchange(s.target, encodeRequest({ uri: faults[i % faults.length]!, body: 'b' }), { timeout: 10_000 })),
      ...Array.from({ length: 40 }, (_, i) => scgiRequest(s.target, { uri: `/n${i}` })),
    ]);
    const normal = all.slice(40) as Awaited<ReturnType<typeof scgiRequest>>[];
    for (const [i, r] of normal.entries()) expect(r.body.toString()).toBe(`fine /n${i}`);
    await noConnectionsLeft(s.server);
    await nextServed(s.target, s.server);
  });
});

describe('handler faults through a real nginx', () => {
  const dir = tempDir('scgi-faults-nginx-');
  let app: ScgiServer;
  let nginx: Nginx;
  const errors: string[] = [];

  beforeAll(async () => {
    const sock = join(dir.path, 'app.sock');
    app = await serve(faulty([]), {
      address: sock,
      socketGroup: 'nogroup',
      handleSignals: false,
      requestTimeout: 500,
      onError: (err) => errors.push(err.message),
    });
    nginx = await startNginx(dir.path, unixLocation(sock, 'client_max_body_size 10m;'));
  });
  afterAll(async () => {
    await nginx?.stop();
    await app?.close();
    dir.cleanup();
  });

  const ok = async () => {
    const res = await fetch(`${nginx.url}/ok`, { method: 'POST', body: 'abcd' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('fine /ok');
  };

  it('throw and rejection → the browser gets 500; next request 200', async () => {
    for (const uri of ['/throw', '/reject']) {
      const res = await fetch(`${nginx.url}${uri}`);
      expect(res.status).toBe(500);
      expect(await res.text()).toBe('Internal Server Error\n');
      await ok();
    }
  });

  it('a handler that never answers → closed at requestTimeout, nginx answers 502; next request 200', async () => {
    const res = await fetch(`${nginx.url}/never`);
    expect(res.status).toBe(502);
    await res.arrayBuffer();
    await ok();
  });

  it('a throw after a partial write with Content-Length → the browser sees the response cut short', async () => {
    const res = await fetch(`${nginx.url}/partial-throw-cl`);
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow(); // nginx: "upstream prematurely closed connection"
    await ok();
  });

  it('a throw after a partial write without Content-Length → nginx cannot tell it from a complete response (documented)', async () => {
    // An SCGI response ends at EOF, and over a unix socket there is no reset
    // to send: nginx relays what arrived and ends its chunked response
    // normally. docs/security.md and the README say to set Content-Length
    // (or buffer) when a truncated body would be mistaken for a whole one.
    const res = await fetch(`${nginx.url}/partial-throw`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('partial ');
    await ok();
  });

  it('a handler that ignores a 3 MiB upload: the browser gets the whole response, nginx logs no reset', async () => {
    const logBefore = nginx.errorLog().length;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${nginx.url}/ignore-body`, { method: 'POST', body: bigBody() });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('ignored the body');
      await ok();
    }
    expect(nginx.errorLog().slice(logBefore)).not.toMatch(/reset by peer|prematurely closed|broken pipe/i);
  });

  it('the browser goes away mid-response: the handler sees close, writes after it are harmless', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${nginx.url}/write-after-gone`, { signal: ctl.signal });
    expect(res.status).toBe(200);
    ctl.abort();
    await waitFor(async () => (await app.getConnections()) === 0, 10_000);
    await ok();
  });
});
