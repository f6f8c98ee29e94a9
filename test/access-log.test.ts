// The access log (accessLog) and the slow-request report
// (slowRequestThreshold), src/status/monitor.ts, on both transports.
import { connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AccessLogEntry, SlowRequest } from '../src/index.ts';
import { encodeRequest } from '../src/client/request.ts';
import { plainResponse } from '../src/protocol/response.ts';
import { Monitor } from '../src/status/monitor.ts';
import { exchange, scgiRequest, testServers, TRANSPORTS, waitFor } from './helpers.ts';

// Common Log Format plus duration (ms) and pid.
const LINE = /^(\S+) - - \[(\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(\S+) (\S+) (\S+)" (\d{1,3}) (\d+) (\d+\.\d{3}) (\d+)$/;

afterEach(() => {
  vi.restoreAllMocks();
});

describe.each(TRANSPORTS)('access log (%s)', (transport) => {
  const s = testServers({ transport });

  const handler = async (headers: { get(n: string): string | undefined }, client: import('../src/index.ts').ScgiClient) => {
    const uri = headers.get('REQUEST_URI');
    if (uri === '/missing') {
      client.writeHead(404, { 'Content-Type': 'text/plain' });
      client.end('no such thing\n');
    } else if (uri === '/raw') {
      client.end('Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nmade');
    } else if (uri === '/partial') {
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.write('part of it');
      await new Promise((r) => setTimeout(r, 10));
      throw new Error('failed half way');
    } else if (uri === '/hang') {
      await new Promise((r) => setTimeout(r, 60_000).unref());
    } else {
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.end('ok\n');
    }
  };

  it('a function gets one entry per request: statuses, bytes, a 413, a reset, a front gone away', async () => {
    const entries: AccessLogEntry[] = [];
    const { address } = await s.start(handler, { accessLog: (e) => entries.push(e), maxBodySize: 10, onError: () => {} });
    const t0 = Date.now();
    const ok = await scgiRequest({ path: address }, { uri: '/', headers: { REMOTE_ADDR: '203.0.113.7' } });
    const missing = await scgiRequest({ path: address }, { uri: '/missing' });
    const raw = await scgiRequest({ path: address }, { uri: '/raw' });
    const big = await scgiRequest({ path: address }, { method: 'POST', uri: '/upload', body: 'x'.repeat(11) });
    const partial = await exchange({ path: address }, encodeRequest({ uri: '/partial' }));
    expect([ok.status, missing.status, raw.status, big.status]).toEqual([200, 404, 201, 413]);
    // The front goes away while the handler runs.
    const sock = connect({ path: address });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(encodeRequest({ uri: '/hang' }));
    await waitFor(() => s.server.stats.requests === 5);
    sock.destroy();
    await waitFor(() => entries.length === 6);
    const by = new Map(entries.map((e) => [e.uri, e]));
    expect([...by.keys()]).toEqual(['/', '/missing', '/raw', '/upload', '/partial', '/hang']);
    const okBytes = Buffer.byteLength('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n');
    expect(by.get('/')).toMatchObject({ remoteAddress: '203.0.113.7', method: 'GET', status: 200, bytes: okBytes, pid: process.pid, aborted: false });
    expect(by.get('/')!.time.getTime()).toBeGreaterThanOrEqual(t0 - 1000);
    expect(by.get('/')!.durationMs).toBeGreaterThanOrEqual(0);
    expect(by.get('/missing')).toMatchObject({ status: 404, aborted: false });
    expect(by.get('/missing')!.bytes).toBe(Buffer.byteLength('Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nno such thing\n'));
    expect(by.get('/raw')).toMatchObject({
      status: 201,
      bytes: Buffer.byteLength('Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nmade'),
      aborted: false,
    });
    expect(by.get('/upload')).toMatchObject({ method: 'POST', status: 413, aborted: false });
    expect(by.get('/upload')!.bytes).toBe(Buffer.byteLength(plainResponse(413, 'Payload Too Large\n')));
    // Part of the response went out, then the handler failed: the connection is cut.
    expect(partial.data.toString('latin1')).toContain('part of it');
    expect(by.get('/partial')).toMatchObject({ status: 200, aborted: true });
    expect(by.get('/partial')!.bytes).toBe(partial.data.length);
    expect(by.get('/partial')!.durationMs).toBeGreaterThanOrEqual(5);
    expect(by.get('/hang')).toMatchObject({ status: 0, bytes: 0, aborted: true });
  });

  it('a TCP reset from the front while the handler runs: an aborted entry, written when the connection ends', async () => {
    const entries: AccessLogEntry[] = [];
    await s.start(handler, { address: '127.0.0.1:0', accessLog: (e) => entries.push(e) });
    const { port } = s.server.address() as { port: number };
    const sock = connect({ host: '127.0.0.1', port });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(encodeRequest({ uri: '/hang' }));
    await waitFor(() => s.server.stats.requests === 1);
    sock.resetAndDestroy();
    await waitFor(() => entries.length === 1);
    expect(entries[0]).toMatchObject({ uri: '/hang', status: 0, bytes: 0, aborted: true, remoteAddress: '127.0.0.1' });
  });

  it('true: one Common Log Format line per request on stdout (with duration and pid)', async () => {
    const writes: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (typeof chunk === 'string' && LINE.test(chunk.split('\n')[0]!)) {
        writes.push(chunk);
        return true;
      }
      return (write as (c: unknown, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write);
    const { address } = await s.start(handler, { accessLog: true });
    const results = await Promise.all(['/', '/missing', '/raw', '/a?b=c"d', '/'].map((uri) => scgiRequest({ path: address }, { uri })));
    expect(results.map((r) => r.status)).toEqual([200, 404, 201, 200, 200]);
    await waitFor(() => writes.join('').split('\n').filter(Boolean).length === 5);
    const lines = writes.join('').split('\n').filter(Boolean);
    const parsed = lines.map((l) => LINE.exec(l)!);
    expect(parsed.every((m) => m !== null)).toBe(true);
    expect(parsed.map((m) => m[4]).sort()).toEqual(['/', '/', '/a?b=c\\x22d', '/missing', '/raw']);
    for (const m of parsed) {
      expect(m[1]).toBe('127.0.0.1');
      expect(m[3]).toBe('GET');
      expect(m[5]).toBe('HTTP/1.1');
      expect(Number(m[9])).toBe(process.pid);
    }
    expect(parsed.find((m) => m[4] === '/missing')![6]).toBe('404');
  });
});

describe('access log batching', () => {
  it('lines of requests that end in one loop turn go out in one write, at the end of the turn', async () => {
    const writes: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string) => {
      writes.push(chunk);
      return true;
    }) as typeof process.stdout.write);
    const monitor = new Monitor({ accessLog: true, slowRequestThreshold: 0, onSlowRequest: () => {} });
    const transports = [0, 1, 2].map((i) => {
      const conn = {};
      const inner = {
        socket: { remoteAddress: undefined, destroy() {} },
        writable: true,
        attach() {},
        pause() {},
        resume() {},
        write: () => true,
        end: () => true,
        cork() {},
        uncork: () => true,
        reset() {},
        destroy() {},
      };
      const headers = { get: (n: string) => ({ REQUEST_METHOD: 'GET', REQUEST_URI: `/${i}` })[n] } as never;
      return monitor.begin(conn, headers, inner);
    });
    for (const t of transports) t.end('Status: 200 OK\r\n\r\nhi', 'latin1');
    expect(writes).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(writes).toHaveLength(1);
    expect(
      writes[0]!
        .split('\n')
        .filter(Boolean)
        .map((l) => LINE.exec(l)![4]),
    ).toEqual(['/0', '/1', '/2']);
    expect(LINE.exec(writes[0]!.split('\n')[0]!)![1]).toBe('-');
    monitor.close();
  });
});

describe.each(TRANSPORTS)('slowRequestThreshold (%s)', (transport) => {
  const s = testServers({ transport });

  it('a request in progress longer than the threshold is reported once, with method, URI, elapsed time and pid', async () => {
    const slow: SlowRequest[] = [];
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const { address } = await s.start(
      async (headers, client) => {
        if (headers.get('REQUEST_URI') === '/slow') await held;
        client.end('Status: 204 No Content\r\n\r\n');
      },
      { slowRequestThreshold: 50, onSlowRequest: (r) => slow.push(r) },
    );
    expect((await scgiRequest({ path: address }, { uri: '/fast' })).status).toBe(204);
    const pending = scgiRequest({ path: address }, { method: 'PUT', uri: '/slow', body: 'x' });
    await waitFor(() => slow.length === 1);
    // Several sweeps later, still once.
    await new Promise((r) => setTimeout(r, 150));
    release();
    expect((await pending).status).toBe(204);
    expect(slow).toHaveLength(1);
    expect(slow[0]).toMatchObject({ method: 'PUT', uri: '/slow', pid: process.pid });
    expect(slow[0]!.elapsedMs).toBeGreaterThanOrEqual(50);
  });

  it('by default one line on stderr', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
    const { address } = await s.start(
      async (_h, client) => {
        await new Promise((r) => setTimeout(r, 120));
        client.end('Status: 204 No Content\r\n\r\n');
      },
      { slowRequestThreshold: 30 },
    );
    expect((await scgiRequest({ path: address }, { uri: '/zzz' })).status).toBe(204);
    const mine = lines.filter((l) => l.startsWith('scgi: slow request:'));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatch(new RegExp(`^scgi: slow request: GET /zzz still in progress after \\d+ ms \\(pid ${process.pid}\\)$`));
  });

  it('out of range is ERR_SCGI_INVALID_OPTION', async () => {
    await expect(s.start(() => {}, { slowRequestThreshold: -1 })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_OPTION' });
    await expect(s.start(() => {}, { accessLog: 'yes' as never })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_OPTION' });
  });
});
