// httpHeaders() and requestTarget() on every front's captured vectors
// (test/fixtures, from nginx, Apache httpd and lighttpd) and on the edge cases.
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { httpHeaders, headerName, requestTarget } from '../src/protocol/cgi.ts';
import { readHeader, type ScgiHeaders } from '../src/index.ts';
import { fixture, netstring, vectors } from './helpers.ts';

async function headersOf(bytes: Buffer, headerEncoding: 'latin1' | 'utf8' = 'utf8'): Promise<ScgiHeaders> {
  const { headers } = await readHeader(Readable.from([bytes]), { headerEncoding });
  return headers;
}

const vector = (file: string) => headersOf(fixture(file));

/** Headers from pairs (values given as JS strings, sent as UTF-8). */
function fromPairs(pairs: [string, string][]): Promise<ScgiHeaders> {
  const bytes = Buffer.concat(pairs.map(([k, v]) => Buffer.concat([Buffer.from(k), Buffer.from([0]), Buffer.from(v), Buffer.from([0])])));
  return headersOf(netstring(bytes));
}

const withPairs = vectors.filter((v) => v.pairs !== null);

describe('headerName', () => {
  it('maps HTTP_* and the two CGI content variables, nothing else', () => {
    expect(headerName('HTTP_X_FORWARDED_FOR')).toBe('x-forwarded-for');
    expect(headerName('HTTP_HOST')).toBe('host');
    expect(headerName('CONTENT_TYPE')).toBe('content-type');
    expect(headerName('CONTENT_LENGTH')).toBe('content-length');
    expect(headerName('REQUEST_METHOD')).toBe(undefined);
    expect(headerName('SCGI')).toBe(undefined);
  });
});

describe('httpHeaders on every captured vector', () => {
  it.each(withPairs.map((v) => [v.file, v] as const))('%s', async (_file, v) => {
    const h = await vector(v.file);
    const { headers, rawHeaders } = httpHeaders(h);
    const pairs = v.pairs!;
    // every HTTP_* pair, in wire order, but the three the CGI variables replace
    const expectedRaw = pairs
      .filter(([k]) => k.startsWith('HTTP_') && !['HTTP_CONTENT_LENGTH', 'HTTP_CONTENT_TYPE', 'HTTP_TRANSFER_ENCODING'].includes(k))
      .flatMap(([k, val]) => [headerName(k)!, val]);
    const withoutContent = rawHeaders.filter((_, i) => !['content-length', 'content-type'].includes(rawHeaders[i - (i % 2)]!));
    expect(withoutContent).toEqual(expectedRaw);
    expect(rawHeaders.length % 2).toBe(0);
    // content-length is CONTENT_LENGTH (what the app reads), when present
    if (headers['content-length'] !== undefined) expect(headers['content-length']).toBe(v.contentLength);
    expect(headers['transfer-encoding']).toBe(undefined);
    // GET/HEAD without a body: no content-length, as with node:http
    const method = pairs.find(([k]) => k === 'REQUEST_METHOD')?.[1] ?? 'GET';
    if ((method === 'GET' || method === 'HEAD') && v.contentLength === '0') expect(headers['content-length']).toBe(undefined);
    if (method === 'POST') expect(headers['content-length']).toBe(v.contentLength);
    // every name lower-case, no CGI-only variable leaks in
    for (let i = 0; i < rawHeaders.length; i += 2) expect(rawHeaders[i]).toMatch(/^[a-z0-9-]+$/);
    expect(headers['request-method']).toBe(undefined);
    expect(headers.scgi).toBe(undefined);
  });

  it('a browser GET (nginx): host, cookie, no empty content-type', async () => {
    const { headers } = httpHeaders(await vector('nginx-tcp-get.bin'));
    expect(headers).toEqual({
      host: '127.0.0.1',
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
      accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
      'accept-language': 'en-US,en;q=0.5',
      'accept-encoding': 'gzip, deflate, br',
      referer: 'http://localhost/start',
      cookie: 'session=abc123; theme=dark',
      'upgrade-insecure-requests': '1',
      'cache-control': 'max-age=0',
      connection: 'keep-alive',
    });
  });

  it('the same GET from Apache and lighttpd gives the same headers (but the host port)', async () => {
    const n = httpHeaders(await vector('nginx-tcp-get.bin')).headers;
    for (const file of ['apache-tcp-get.bin', 'lighttpd-tcp-get.bin']) {
      const h = httpHeaders(await vector(file)).headers;
      expect({ ...h, host: 'x' }).toEqual({ ...n, host: 'x' });
      expect(h.host).toMatch(/^127\.0\.0\.1:\d+$/);
    }
  });

  it('repeated headers: nginx sends two pairs, merged as node:http does; Apache and lighttpd joined them already', async () => {
    const nginx = httpHeaders(await vector('nginx-tcp-duphdr.bin'));
    expect(nginx.headers['x-dup']).toBe('one, two');
    expect(nginx.rawHeaders.filter((x, i) => i % 2 === 0 && x === 'x-dup').length).toBe(2);
    for (const file of ['apache-tcp-duphdr.bin', 'lighttpd-tcp-duphdr.bin']) {
      const { headers, rawHeaders } = httpHeaders(await vector(file));
      expect(headers['x-dup']).toBe('one, two');
      expect(rawHeaders.filter((x, i) => i % 2 === 0 && x === 'x-dup').length).toBe(1);
    }
    expect(httpHeaders(await vector('nginx-tcp-dupcookie.bin')).headers.cookie).toBe('a=1; b=2');
    expect(httpHeaders(await vector('lighttpd-tcp-dupcookie.bin')).headers.cookie).toBe('a=1; b=2');
    // Apache joins cookies with ", " before we see them: passed through as is
    expect(httpHeaders(await vector('apache-tcp-dupcookie.bin')).headers.cookie).toBe('a=1, b=2');
  });

  it('content-type and content-length prefer the CGI variables', async () => {
    for (const file of ['nginx-tcp-post5.bin', 'apache-tcp-post5.bin', 'lighttpd-tcp-post5.bin', 'nginx-noparams-post5.bin', 'nginx-unbuf-post5.bin']) {
      const { headers, rawHeaders } = httpHeaders(await vector(file));
      expect(headers['content-type']).toBe('application/x-www-form-urlencoded');
      expect(headers['content-length']).toBe('5');
      expect(rawHeaders.filter((x, i) => i % 2 === 0 && x.startsWith('content-')).sort()).toEqual(['content-length', 'content-type']);
    }
    // POST with an empty body keeps content-length: 0
    for (const file of ['nginx-tcp-post0.bin', 'apache-tcp-post0.bin', 'lighttpd-tcp-post0.bin']) {
      expect(httpHeaders(await vector(file)).headers['content-length']).toBe('0');
    }
  });

  it('nginx-unbuf: content-length is CONTENT_LENGTH (9003, what follows), not HTTP_CONTENT_LENGTH (100000)', async () => {
    const h = await vector('nginx-unbuf-post100k.bin');
    expect(h.get('HTTP_CONTENT_LENGTH')).toBe('100000');
    expect(httpHeaders(h).headers['content-length']).toBe('9003');
  });

  it('chunked uploads (nginx passes HTTP_TRANSFER_ENCODING): no transfer-encoding, the real length', async () => {
    for (const file of ['nginx-tcp-chunked.bin', 'nginx-unbuf-chunked.bin', 'lighttpd-tcp-chunked.bin']) {
      const { headers } = httpHeaders(await vector(file));
      expect(headers['transfer-encoding']).toBe(undefined);
      expect(headers['content-length']).toBe('100000');
      expect(headers['content-type']).toBe('application/octet-stream');
    }
  });

  it('UTF-8 header bytes: utf8 decoding gives the text, latin1 (the default) the bytes as node:http does', async () => {
    for (const file of ['nginx-tcp-utf8hdr.bin', 'apache-tcp-utf8hdr.bin', 'lighttpd-tcp-utf8hdr.bin']) {
      expect(httpHeaders(await headersOf(fixture(file), 'utf8')).headers['x-utf8']).toBe('héllo wörld ✓');
      const latin1 = httpHeaders(await headersOf(fixture(file), 'latin1')).headers['x-utf8'] as string;
      expect(Buffer.from(latin1, 'latin1').toString('utf8')).toBe('héllo wörld ✓');
    }
  });

  it('merging rules: set-cookie array, cookie "; ", single-valued first wins, others ", "', async () => {
    const h = await fromPairs([
      ['CONTENT_LENGTH', '0'],
      ['HTTP_SET_COOKIE', 'a=1'],
      ['HTTP_SET_COOKIE', 'b=2'],
      ['HTTP_COOKIE', 'c=3'],
      ['HTTP_COOKIE', 'd=4'],
      ['HTTP_HOST', 'first'],
      ['HTTP_HOST', 'second'],
      ['HTTP_ACCEPT', 'a/b'],
      ['HTTP_ACCEPT', 'c/d'],
      ['HTTP_X_FORWARDED_FOR', '10.0.0.1'],
      ['REQUEST_METHOD', 'GET'],
    ]);
    const { headers, rawHeaders } = httpHeaders(h);
    expect(headers).toEqual({
      'set-cookie': ['a=1', 'b=2'],
      cookie: 'c=3; d=4',
      host: 'first',
      accept: 'a/b, c/d',
      'x-forwarded-for': '10.0.0.1',
    });
    expect(rawHeaders).toEqual([
      'set-cookie',
      'a=1',
      'set-cookie',
      'b=2',
      'cookie',
      'c=3',
      'cookie',
      'd=4',
      'host',
      'first',
      'host',
      'second',
      'accept',
      'a/b',
      'accept',
      'c/d',
      'x-forwarded-for',
      '10.0.0.1',
    ]);
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype); // as node:http's (Next.js calls headers.hasOwnProperty)
  });

  it('content-length with a zero body: kept for PUT/PATCH/POST and when the browser sent one, dropped for a bare GET/DELETE', async () => {
    const cl = async (pairs: [string, string][]) => httpHeaders(await fromPairs([['CONTENT_LENGTH', '0'], ...pairs])).headers['content-length'];
    expect(await cl([['REQUEST_METHOD', 'PUT']])).toBe('0');
    expect(await cl([['REQUEST_METHOD', 'PATCH']])).toBe('0');
    expect(await cl([['REQUEST_METHOD', 'DELETE']])).toBe(undefined);
    expect(
      await cl([
        ['REQUEST_METHOD', 'DELETE'],
        ['HTTP_CONTENT_LENGTH', '0'],
      ]),
    ).toBe('0');
    expect(await cl([])).toBe(undefined);
  });
});

describe('requestTarget on every captured vector', () => {
  const GET_URL = '/app/page?x=1&y=hello%20world&z=%C3%A9&empty=&flag';

  it.each(withPairs.map((v) => [v.file, v] as const))('%s', async (_file, v) => {
    const t = requestTarget(await vector(v.file));
    const p = Object.fromEntries(v.pairs!);
    expect(t.method).toBe(p.REQUEST_METHOD ?? 'GET');
    expect(t.url).toBe(p.REQUEST_URI ?? '/');
    expect(t.path + (t.query ? `?${t.query}` : '')).toBe(t.url);
    if (p.QUERY_STRING !== undefined) expect(t.query).toBe(p.QUERY_STRING);
    expect(t.scheme).toBe('http');
    expect(t.host).toBe(p.HTTP_HOST);
    expect(t.httpVersion).toBe(p.SERVER_PROTOCOL ? p.SERVER_PROTOCOL.slice(5) : '1.1');
    expect(t.remoteAddress).toBe(p.REMOTE_ADDR);
    expect(t.remotePort).toBe(p.REMOTE_PORT === undefined ? undefined : Number(p.REMOTE_PORT));
    expect(t.serverPort).toBe(p.SERVER_PORT === undefined ? undefined : Number(p.SERVER_PORT));
  });

  it('a browser GET: the same target from all three fronts', async () => {
    for (const file of ['nginx-tcp-get.bin', 'apache-tcp-get.bin', 'lighttpd-tcp-get.bin']) {
      const t = requestTarget(await vector(file));
      expect(t).toMatchObject({
        method: 'GET',
        url: GET_URL,
        path: '/app/page',
        query: 'x=1&y=hello%20world&z=%C3%A9&empty=&flag',
        scheme: 'http',
        httpVersion: '1.1',
        remoteAddress: '127.0.0.1',
      });
      expect(t.remotePort).toBeGreaterThan(0);
    }
  });

  it('HEAD, HTTP/1.0', async () => {
    for (const front of ['nginx', 'apache', 'lighttpd']) {
      expect(requestTarget(await vector(`${front}-tcp-head.bin`)).method).toBe('HEAD');
      expect(requestTarget(await vector(`${front}-tcp-http10.bin`)).httpVersion).toBe('1.0');
    }
  });

  it('without REQUEST_URI: Apache SCRIPT_NAME, lighttpd SCRIPT_NAME + PATH_INFO, nginx DOCUMENT_URI, re-encoded', async () => {
    const raw = '/app/a%20b/%E2%9C%93;p=1?q=%C3%A9&r=a+b';
    for (const front of ['nginx', 'apache', 'lighttpd']) {
      const v = vectors.find((x) => x.file === `${front}-tcp-pathenc.bin`)!;
      expect(requestTarget(await vector(v.file)).url).toBe(raw);
      const t = requestTarget(await fromPairs(v.pairs!.filter(([k]) => k !== 'REQUEST_URI')));
      expect(t.url).toBe(raw);
      expect(t.path).toBe('/app/a%20b/%E2%9C%93;p=1');
      expect(t.query).toBe('q=%C3%A9&r=a+b');
    }
  });

  it('nginx without scgi_params: GET /, host from HTTP_HOST, HTTP/1.1', async () => {
    const t = requestTarget(await vector('nginx-noparams-get.bin'));
    expect(t).toMatchObject({ method: 'GET', url: '/', path: '/', query: '', host: '127.0.0.1:18216', httpVersion: '1.1', remoteAddress: undefined });
  });

  it('scheme from REQUEST_SCHEME or HTTPS; host fallbacks', async () => {
    const t = async (pairs: [string, string][]) => requestTarget(await fromPairs([['CONTENT_LENGTH', '0'], ...pairs]));
    expect((await t([['HTTPS', 'on']])).scheme).toBe('https');
    expect((await t([['HTTPS', '1']])).scheme).toBe('https');
    expect((await t([['HTTPS', 'off']])).scheme).toBe('http');
    expect((await t([['REQUEST_SCHEME', 'https']])).scheme).toBe('https');
    expect(
      (
        await t([
          ['SERVER_NAME', 'example.org'],
          ['SERVER_PORT', '8443'],
          ['HTTPS', 'on'],
        ])
      ).host,
    ).toBe('example.org:8443');
    expect(
      (
        await t([
          ['SERVER_NAME', 'example.org'],
          ['SERVER_PORT', '443'],
          ['HTTPS', 'on'],
        ])
      ).host,
    ).toBe('example.org');
    expect(
      (
        await t([
          ['SERVER_NAME', 'example.org'],
          ['SERVER_PORT', '80'],
        ])
      ).host,
    ).toBe('example.org');
    // nginx sends an empty SERVER_NAME when server_name is unset
    expect(
      (
        await t([
          ['SERVER_NAME', ''],
          ['SERVER_ADDR', '::1'],
          ['SERVER_PORT', '8080'],
        ])
      ).host,
    ).toBe('[::1]:8080');
    expect((await t([])).host).toBe('localhost');
    expect(
      (
        await t([
          ['HTTP_HOST', 'h:1'],
          ['SERVER_NAME', 'x'],
        ])
      ).host,
    ).toBe('h:1');
    expect(
      await t([
        ['REQUEST_METHOD', 'PUT'],
        ['SERVER_PROTOCOL', 'HTTP/2.0'],
        ['REMOTE_PORT', 'x'],
      ]),
    ).toMatchObject({ method: 'PUT', httpVersion: '2.0', remotePort: undefined });
  });
});
