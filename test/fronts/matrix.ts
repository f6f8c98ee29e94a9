// The front × transport matrix: each front (nginx, Apache httpd, lighttpd) is
// started from its example config in examples/ (read verbatim; only the
// socket path or host:port is substituted), in front of a live scgi server on
// a unix socket, TCP 127.0.0.1 and TCP [::1], and driven with real HTTP
// requests. Each front's test file calls frontMatrix() with what that front
// does differently (measured, see docs/deployment.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type Handler, type ScgiServer } from '../../src/index.ts';
import { bigBody, tempDir } from '../helpers.ts';
import { startApache } from './apache.ts';
import { asRoot, FRONT_GROUP } from './front.ts';
import { startLighttpd } from './lighttpd.ts';
import { startNginx } from './nginx.ts';

export const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

export type Upstream = { kind: 'unix'; path: string } | { kind: 'tcp'; host: '127.0.0.1' | '::1'; port: number };
export type Transport = 'unix' | '127.0.0.1' | '[::1]';

export interface RunningFront {
  url: string;
  errorLog(): string;
  stop(): Promise<void>;
}

export type FrontName = 'nginx' | 'apache' | 'lighttpd';

/** The example snippet with its socket path replaced by `upstream` (and nothing else). */
export function exampleConfig(front: FrontName, upstream: Upstream, lighttpdHostOptions = ''): string {
  const file = { nginx: 'nginx/scgi-location.conf', apache: 'apache/scgi.conf', lighttpd: 'lighttpd/scgi.conf' }[front];
  const text = readFileSync(join(EXAMPLES, file), 'utf8');
  const replace = (from: string, to: string) => {
    if (!text.includes(from)) throw new Error(`${file} no longer contains ${from}`);
    return text.replace(from, to);
  };
  const hostPort = upstream.kind === 'tcp' ? (upstream.host.includes(':') ? `[${upstream.host}]:${upstream.port}` : `${upstream.host}:${upstream.port}`) : '';
  switch (front) {
    case 'nginx':
      return replace('unix:/run/scgi-app/app.sock', upstream.kind === 'unix' ? `unix:${upstream.path}` : hostPort);
    case 'apache':
      return replace(
        'unix:/run/scgi-app/app.sock|scgi://localhost/',
        upstream.kind === 'unix' ? `unix:${upstream.path}|scgi://localhost/` : `scgi://${hostPort}/`,
      );
    case 'lighttpd':
      return replace(
        '"socket" => "/run/scgi-app/app.sock"',
        (upstream.kind === 'unix' ? `"socket" => "${upstream.path}"` : `"host" => "${upstream.host}", "port" => ${upstream.port}`) + lighttpdHostOptions,
      );
  }
}

/**
 * Start `front` from its example config pointing at `upstream`; `extra` is
 * appended (e.g. timeouts); lighttpd has no global backend timeouts, so
 * `lighttpdHostOptions` (`, "read-timeout" => 1`) goes next to its socket.
 */
export async function startFront(front: FrontName, dir: string, upstream: Upstream, extra = '', lighttpdHostOptions = ''): Promise<RunningFront> {
  const snippet = exampleConfig(front, upstream, lighttpdHostOptions);
  switch (front) {
    case 'nginx':
      return startNginx(dir, `${snippet}\n${extra}`);
    case 'apache':
      return startApache(dir, `${snippet}\n${extra}`);
    case 'lighttpd':
      return startLighttpd(dir, `${snippet}\n${extra}`);
  }
}

/** Where the app listens for `transport`, and the matching upstream for the front. */
export function appAddress(transport: Transport, dir: string): string {
  return transport === 'unix' ? join(dir, 'app.sock') : transport === '127.0.0.1' ? '127.0.0.1:0' : '[::1]:0';
}

export function upstreamOf(server: ScgiServer): Upstream {
  const a = server.address();
  if (typeof a === 'string') return { kind: 'unix', path: a };
  if (a === null) throw new Error('not listening');
  return { kind: 'tcp', host: a.family === 'IPv6' ? '::1' : '127.0.0.1', port: a.port };
}

/** A socketGroup the front's workers are in (they run as nobody:nogroup when started as root). */
export const frontGroup = asRoot ? { socketGroup: FRONT_GROUP } : {};

const STREAM = bigBody(1024 * 1024);
const STREAM_SHA = createHash('sha256').update(STREAM).digest('hex');

/** The app behind every front: routes by path. */
export const matrixApp: Handler = async (headers, client) => {
  const uri = headers.get('REQUEST_URI') ?? headers.get('DOCUMENT_URI') ?? '/';
  const path = uri.split('?')[0]!;
  if (path === '/throw') throw new Error('handler failure (expected by the test)');
  if (path === '/missing') {
    client.writeHead(404, 'Not Here', { 'Content-Type': 'text/plain' });
    client.end('nope');
    return;
  }
  if (path === '/head') {
    // one write: head and body (Content-Length: 9 from end(body))
    client.writeHead(200, { 'Content-Type': 'text/plain' });
    client.end(`head body`);
    return;
  }
  if (path === '/redirect') {
    client.writeHead(302, { Location: '/elsewhere', 'Content-Type': 'text/plain' });
    client.end();
    return;
  }
  if (path === '/stream') {
    client.writeHead(200, { 'Content-Type': 'application/octet-stream', 'X-Sha256': STREAM_SHA });
    for (let off = 0; off < STREAM.length; off += 64 * 1024) {
      if (!client.write(STREAM.subarray(off, off + 64 * 1024))) await new Promise((r) => client.once('drain', r));
    }
    client.end();
    return;
  }
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of client) {
    hash.update(chunk);
    length += chunk.length;
  }
  const utf8 = headers.indexOf('HTTP_X_UTF8');
  client.writeHead(200, {
    'Content-Type': 'application/json',
    'X-Body-Length': String(length),
    'X-Body-Sha256': hash.digest('hex'),
    'Set-Cookie': ['a=1', 'b=2'],
  });
  client.end(
    JSON.stringify({
      method: headers.get('REQUEST_METHOD'),
      uri,
      query: headers.get('QUERY_STRING'),
      contentLength: headers.contentLength,
      cookie: headers.getAll('HTTP_COOKIE'),
      dup: headers.getAll('HTTP_X_DUP'),
      utf8: utf8 === -1 ? null : headers.rawValue(utf8).toString('utf8'),
      transferEncoding: headers.get('HTTP_TRANSFER_ENCODING') ?? null,
    }),
  );
};

export interface Reply {
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A request with node:http: raw header list (repeats kept), optional chunked body. */
export function httpGet(url: string, opts: { method?: string; headers?: string[]; chunks?: Buffer[]; body?: Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = [...(opts.headers ?? [])];
    // with a raw header list node:http adds no Host (Apache answers 400 without one)
    if (!headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) headers.unshift('Host', new URL(url).host);
    if (opts.body !== undefined) headers.push('Content-Length', String(opts.body.length));
    if (opts.chunks !== undefined) headers.push('Transfer-Encoding', 'chunked');
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: headers as never, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, statusMessage: res.statusMessage!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else if (opts.chunks !== undefined) {
      for (const c of opts.chunks) req.write(c);
      req.end();
    } else req.end();
  });
}

export interface FrontTraits {
  /** HTTP_X_DUP as the app sees it for two `X-Dup` request headers. */
  dupHeader: string[];
  /** HTTP_COOKIE for two `Cookie` request headers. */
  dupCookie: string[];
  /** What the browser gets for `Status: 404 Not Here`. */
  reason404: string;
  /** Chunked uploads: buffered with a real CONTENT_LENGTH, or 411 from the front. */
  chunked: 'buffered' | '411';
  /** Content-Length the browser may see on HEAD: the app's ('9'), or none (undefined). */
  headContentLength: (string | undefined)[];
}

/** The whole matrix for one front. */
export function frontMatrix(front: FrontName, traits: FrontTraits, transports: Transport[] = ['unix', '127.0.0.1', '[::1]']): void {
  describe.each(transports)(`${front} over %s`, (transport) => {
    const dir = tempDir(`scgi-${front}-`);
    let app: ScgiServer;
    let http: RunningFront;
    const errors: Error[] = [];
    const clientErrors: Error[] = [];

    beforeAll(async () => {
      app = await serve(matrixApp, {
        address: appAddress(transport, dir.path),
        ...frontGroup,
        handleSignals: false,
        onError: (err) => errors.push(err),
      });
      app.on('clientError', (err: Error) => clientErrors.push(err));
      http = await startFront(front, dir.path, upstreamOf(app));
    });

    afterAll(async () => {
      await http?.stop();
      await app?.close();
      dir.cleanup();
    });

    it('GET with a query string and cookies', async () => {
      const res = await fetch(`${http.url}/page?x=1&y=%20z`, { headers: { Cookie: 'c=3; d=4' } });
      expect(res.status).toBe(200);
      expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
      expect(await res.json()).toMatchObject({ method: 'GET', uri: '/page?x=1&y=%20z', query: 'x=1&y=%20z', cookie: ['c=3; d=4'], contentLength: 0 });
    });

    it('POST 5 bytes', async () => {
      const res = await fetch(`${http.url}/post`, { method: 'POST', body: 'hello' });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-body-length')).toBe('5');
      expect(res.headers.get('x-body-sha256')).toBe(createHash('sha256').update('hello').digest('hex'));
      expect(await res.json()).toMatchObject({ method: 'POST', contentLength: 5 });
    });

    it('POST 3 MiB arrives byte-exact', async () => {
      const body = bigBody();
      const res = await fetch(`${http.url}/upload`, { method: 'POST', body });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-body-length')).toBe(String(body.length));
      expect(res.headers.get('x-body-sha256')).toBe(createHash('sha256').update(body).digest('hex'));
    });

    it(`chunked upload: ${traits.chunked === 'buffered' ? 'buffered by the front, real CONTENT_LENGTH' : '411 from the front, a quiet empty connection to the app'}`, async () => {
      const chunks = [Buffer.from('hello '), Buffer.from('chunked '), Buffer.from('world')];
      const before = { ...app.stats };
      const handlerErrors = errors.length;
      const res = await httpGet(`${http.url}/chunked`, { method: 'POST', chunks });
      if (traits.chunked === 'buffered') {
        expect(res.status).toBe(200);
        expect(res.headers['x-body-length']).toBe('19');
        expect(JSON.parse(res.body.toString())).toMatchObject({ contentLength: 19 });
      } else {
        expect(res.status).toBe(411);
        // Apache opened a connection and closed it without a byte: no
        // request, no rejection, no error.
        await new Promise((r) => setTimeout(r, 100));
        expect(app.stats.requests).toBe(before.requests);
        expect(app.stats.connections).toBe(before.connections + 1);
      }
      expect(app.stats.rejected).toBe(before.rejected);
      expect(app.stats.errors).toBe(before.errors);
      expect(errors.length).toBe(handlerErrors);
      expect(clientErrors).toEqual([]);
    });

    it('duplicate request headers', async () => {
      const res = await httpGet(`${http.url}/dup`, { headers: ['Host', '127.0.0.1', 'X-Dup', 'one', 'X-Dup', 'two', 'Cookie', 'a=1', 'Cookie', 'b=2'] });
      expect(res.status).toBe(200);
      const got = JSON.parse(res.body.toString());
      expect(got.dup).toEqual(traits.dupHeader);
      expect(got.cookie).toEqual(traits.dupCookie);
    });

    it('UTF-8 header bytes pass through unchanged', async () => {
      const value = 'héllo ✓ 日本';
      // node:http writes header strings as latin1: send the UTF-8 bytes that way
      const res = await httpGet(`${http.url}/utf8`, { headers: ['X-Utf8', Buffer.from(value).toString('latin1')] });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString()).utf8).toBe(value);
    });

    it('HEAD', async () => {
      const res = await httpGet(`${http.url}/head`, { method: 'HEAD' });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(0);
      expect(traits.headContentLength).toContain(res.headers['content-length']);
      // the next request on a fresh connection is fine
      expect((await fetch(`${http.url}/after-head`)).status).toBe(200);
    });

    it('a streamed 1 MiB response in 64 KiB writes arrives intact', async () => {
      const res = await fetch(`${http.url}/stream`);
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.length).toBe(STREAM.length);
      expect(createHash('sha256').update(body).digest('hex')).toBe(STREAM_SHA);
    });

    it(`Status: 404 with a custom reason → "${traits.reason404}"`, async () => {
      const res = await httpGet(`${http.url}/missing`);
      expect(res.status).toBe(404);
      expect(res.statusMessage).toBe(traits.reason404);
      expect(res.body.toString()).toBe('nope');
    });

    it('a redirect', async () => {
      const res = await fetch(`${http.url}/redirect`, { redirect: 'manual' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toMatch(/^(http:\/\/127\.0\.0\.1:\d+)?\/elsewhere$/);
    });

    it('a handler that throws: the browser gets 500, the next request is fine', async () => {
      const n = errors.length;
      expect((await fetch(`${http.url}/throw`)).status).toBe(500);
      expect(errors.length).toBe(n + 1);
      expect((await fetch(`${http.url}/after`)).status).toBe(200);
    });

    it('the front logged no error about the app', () => {
      expect(http.errorLog()).not.toMatch(/reset by peer|prematurely closed|Connection refused|Permission denied|AH01075|AH00898/);
      expect(clientErrors).toEqual([]);
    });
  });
}
