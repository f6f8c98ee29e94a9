// scgi/fetch against hostile and unusual input (issue 12 items 1, 4, 5), through
// a real server socket with raw netstrings and through a real nginx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Hono } from 'hono';
import { serve, type ScgiServer } from '../src/index.ts';
import { fromFetch } from '../src/adapters/fetch.ts';
import { parseResponse } from '../src/client/request.ts';
import { block, exchange, netstring, tempDir } from './helpers.ts';
import { startNginx, unixLocation, type Nginx } from './fronts/nginx.ts';

/** What the app saw, answered as JSON. */
const echoApp = async (request: Request) => {
  // `redirect` is only on the platform Request: the adapter must be able to build it too
  expect(request.redirect).toBe('follow');
  const u = new URL(request.url);
  const headers: Record<string, string> = {};
  request.headers.forEach((v, k) => {
    headers[k] = v;
  });
  return Response.json({ url: request.url, pathname: u.pathname, search: u.search, host: u.host, method: request.method, headers });
};

const dir = tempDir('scgi-fetch-');
let server: ScgiServer;
let utf8Server: ScgiServer;
const sock = join(dir.path, 'fetch.sock');
const utf8Sock = join(dir.path, 'fetch-utf8.sock');
beforeAll(async () => {
  server = await serve(fromFetch(echoApp), { address: sock, handleSignals: false, socketGroup: 'nogroup' });
  utf8Server = await serve(fromFetch(echoApp), { address: utf8Sock, handleSignals: false, headerEncoding: 'utf8' });
});
afterAll(async () => {
  await server?.close();
  await utf8Server?.close();
  dir.cleanup();
});

const BASE: [string, string][] = [
  ['SCGI', '1'],
  ['REQUEST_METHOD', 'GET'],
  ['REQUEST_URI', '/public?a=1'],
  ['QUERY_STRING', 'a=1'],
  ['SERVER_NAME', 'app.example'],
  ['SERVER_PORT', '8443'],
  ['REQUEST_SCHEME', 'https'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
];

/** Send raw CGI pairs (latin1 strings: any byte) to `path`; parse the CGI answer. */
async function raw(pairs: [string, string][], path = sock, body = '') {
  const names = new Set(pairs.map(([k]) => k));
  const all: [string, string][] = [['CONTENT_LENGTH', String(body.length)], ...BASE.filter(([k]) => !names.has(k)), ...pairs];
  const ex = await exchange({ path }, Buffer.concat([netstring(block(all)), Buffer.from(body, 'latin1')]));
  return parseResponse(ex.data);
}

async function seen(pairs: [string, string][], path = sock) {
  const res = await raw(pairs, path);
  expect(res.status, res.body.toString()).toBe(200);
  return JSON.parse(res.body.toString()) as { url: string; pathname: string; search: string; host: string; method: string; headers: Record<string, string> };
}

describe('scgi/fetch: the Host header never changes the path (item 1)', () => {
  const hostile = [
    'example.com\\admin?',
    'example.com/admin?',
    'evil.com#',
    'evil.com?x=',
    'a@evil.com',
    'user:pw@evil.com',
    'evil.com /admin',
    '[::1',
    '::1]',
    'evil.com:99999',
    'evil.com:12a',
    '',
    'evil.com\t',
  ];
  for (const host of hostile) {
    it(`Host ${JSON.stringify(host)}: path and query are the request's, authority from SERVER_NAME:SERVER_PORT`, async () => {
      const s = await seen([['HTTP_HOST', host]]);
      expect(s.pathname).toBe('/public');
      expect(s.search).toBe('?a=1');
      expect(s.url).toBe('https://app.example:8443/public?a=1');
    });
  }

  for (const [host, expected] of [
    ['api.example', 'api.example'],
    ['api.example:8443', 'api.example:8443'],
    ['API.Example', 'api.example'],
    ['127.0.0.1:81', '127.0.0.1:81'],
    ['[::1]:8080', '[::1]:8080'],
    ['[::1]', '[::1]'],
  ] as const) {
    it(`Host ${host} is used as it is`, async () => {
      const s = await seen([['HTTP_HOST', host]]);
      expect(s.host).toBe(expected);
      expect(s.pathname).toBe('/public');
    });
  }

  it('without REQUEST_URI: SCRIPT_NAME + PATH_INFO + QUERY_STRING, re-encoded', async () => {
    const s = await seen([
      ['REQUEST_URI', ''],
      ['SCRIPT_NAME', '/app'],
      ['PATH_INFO', '/a b#c'],
      ['QUERY_STRING', 'q=1'],
      ['HTTP_HOST', 'evil.com#'],
    ]);
    expect(s.pathname).toBe('/app/a%20b%23c');
    expect(s.search).toBe('?q=1');
    expect(s.host).toBe('app.example:8443');
  });

  it('an absolute-form REQUEST_URI keeps its own path and query', async () => {
    const s = await seen([
      ['REQUEST_URI', 'http://other.example/x/y?z=1'],
      ['HTTP_HOST', 'other.example'],
    ]);
    expect(s.pathname).toBe('/x/y');
    expect(s.search).toBe('?z=1');
  });
});

describe('scgi/fetch: no 500 from the adapter (item 5)', () => {
  const cases: { name: string; pairs: [string, string][]; path?: string; status: number; check?: (s: Awaited<ReturnType<typeof seen>>) => void }[] = [
    { name: 'Host with userinfo', pairs: [['HTTP_HOST', 'a@evil.com']], status: 200, check: (s) => expect(s.headers.host).toBe('a@evil.com') },
    { name: 'Host with a space', pairs: [['HTTP_HOST', 'a b']], status: 200 },
    { name: 'Host [::1', pairs: [['HTTP_HOST', '[::1']], status: 200 },
    { name: 'method TRACE', pairs: [['REQUEST_METHOD', 'TRACE']], status: 200, check: (s) => expect(s.method).toBe('TRACE') },
    { name: 'method CONNECT', pairs: [['REQUEST_METHOD', 'CONNECT']], status: 200, check: (s) => expect(s.method).toBe('CONNECT') },
    { name: 'method G T', pairs: [['REQUEST_METHOD', 'G T']], status: 400 },
    { name: 'lower-case get', pairs: [['REQUEST_METHOD', 'get']], status: 200, check: (s) => expect(s.method).toBe('GET') },
    {
      name: 'header name HTTP_',
      pairs: [
        ['HTTP_', 'x'],
        ['HTTP_X_OK', '1'],
      ],
      status: 200,
      check: (s) => expect(s.headers['x-ok']).toBe('1'),
    },
    {
      name: 'header name HTTP_X Y',
      pairs: [
        ['HTTP_X Y', 'x'],
        ['HTTP_X_OK', '1'],
      ],
      status: 200,
      check: (s) => expect(Object.keys(s.headers)).not.toContain('x y'),
    },
    {
      name: 'header name with a byte >= 0x80',
      pairs: [
        ['HTTP_X_\xe9', 'x'],
        ['HTTP_X_OK', '1'],
      ],
      status: 200,
      check: (s) => expect(s.headers['x-ok']).toBe('1'),
    },
    { name: 'latin1 header value', pairs: [['HTTP_X_V', 'caf\xe9']], status: 200, check: (s) => expect(s.headers['x-v']).toBe('caf\xe9') },
    {
      name: 'utf8: a UTF-8 cookie é€ (the bytes, as a ByteString)',
      pairs: [['HTTP_COOKIE', Buffer.from('k=é€', 'utf8').toString('latin1')]],
      path: utf8Sock,
      status: 200,
      check: (s) => expect(Buffer.from(s.headers.cookie!, 'latin1').toString('utf8')).toBe('k=é€'),
    },
    { name: 'utf8: a lone 0xC3', pairs: [['HTTP_X_V', 'a\xc3b']], path: utf8Sock, status: 200, check: (s) => expect(s.headers['x-v']).toMatch(/^a.+b$/) },
    {
      name: 'request target *',
      pairs: [
        ['REQUEST_METHOD', 'OPTIONS'],
        ['REQUEST_URI', '*'],
      ],
      status: 400,
    },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.status}`, async () => {
      const res = await raw(c.pairs, c.path);
      expect(res.status, res.body.toString()).toBe(c.status);
      if (c.check) c.check(JSON.parse(res.body.toString()));
    });
  }
});

describe('scgi/fetch: Content-Length (item 4)', () => {
  it('HEAD, 204, 304 and a null body', async () => {
    const app = new Hono();
    app.get('/', (c) => c.text('Hello, Hono'));
    app.get('/204', (c) => c.body(null, 204));
    app.get('/304', () => new Response(null, { status: 304, headers: { ETag: '"x"' } }));
    app.get('/204-body', () => new Response('no', { status: 204 }));
    app.get('/null', () => new Response(null));
    app.get('/len', () => new Response('abc', { headers: { 'content-length': '3' } }));
    const s = await serve(fromFetch(app), { address: join(dir.path, 'cl.sock'), handleSignals: false });
    const q = async (method: string, uri: string) =>
      raw(
        [
          ['REQUEST_METHOD', method],
          ['REQUEST_URI', uri],
        ],
        join(dir.path, 'cl.sock'),
      );
    try {
      const get = await q('GET', '/');
      expect(get.headers['content-length']).toBe('11');
      const head = await q('HEAD', '/');
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBeUndefined();
      expect(head.body.length).toBe(0);
      expect((await q('GET', '/204')).headers['content-length']).toBeUndefined();
      const nm = await q('GET', '/304');
      expect(nm.status).toBe(304);
      expect(nm.headers['content-length']).toBeUndefined();
      const nb = await q('GET', '/204-body');
      expect(nb.headers['content-length']).toBeUndefined();
      expect(nb.body.length).toBe(0);
      expect((await q('GET', '/null')).headers['content-length']).toBe('0');
      expect((await q('GET', '/len')).rawHeaders.filter(([n]) => n.toLowerCase() === 'content-length')).toEqual([['content-length', '3']]);
      // A HEAD answered by a handler that returns the GET body: the length GET would have.
      const plain = await serve(
        fromFetch(() => new Response('12345')),
        { address: join(dir.path, 'cl2.sock'), handleSignals: false },
      );
      try {
        const h = await raw([['REQUEST_METHOD', 'HEAD']], join(dir.path, 'cl2.sock'));
        expect(h.headers['content-length']).toBe('5');
        expect(h.body.length).toBe(0);
      } finally {
        await plain.close();
      }
    } finally {
      await s.close();
    }
  });
});

/** One HTTP/1.1 request over a raw socket (Host as given, nothing validated), the whole answer. */
function httpRaw(port: number, request: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    const got: Buffer[] = [];
    s.on('data', (c) => got.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(got).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      resolve({ status: Number(text.slice(9, 12)), head: text.slice(0, end), body: text.slice(end + 4) });
    });
    s.write(request);
  });
}

describe('through nginx', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    chmodSync(dir.path, 0o711);
    mkdirSync(join(dir.path, 'n'));
    nginx = await startNginx(
      join(dir.path, 'n'),
      `location /admin { deny all; }
    location = /length { include scgi_params; scgi_pass unix:${join(dir.path, 'hono.sock')}; }
    ${unixLocation(sock)}`,
    );
  });
  afterAll(async () => {
    await nginx?.stop();
  });

  // nginx 1.22 passes these Hosts to the app (Apache and lighttpd refuse them)
  for (const host of ['example.com\\admin?', 'evil.com#', 'evil.com?x=', 'a@evil.com']) {
    it(`GET /public with Host ${JSON.stringify(host)} reaches the app as /public, never /admin`, async () => {
      const r = await httpRaw(nginx.port, `GET /public?a=1 HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(r.status, r.head + r.body).toBe(200);
      const s = JSON.parse(r.body) as { pathname: string; search: string };
      expect(s.pathname).toBe('/public');
      expect(s.search).toBe('?a=1');
    });
  }

  it('nginx still denies /admin', async () => {
    expect((await fetch(`${nginx.url}/admin`)).status).toBe(403);
  });

  it('HEAD through nginx: no Content-Length: 0 for an 11-byte route', async () => {
    const app = new Hono();
    app.get('/length', (c) => c.text('Hello, Hono'));
    app.get('/length204', (c) => c.body(null, 204));
    const s = await serve(fromFetch(app), { address: join(dir.path, 'hono.sock'), handleSignals: false, socketGroup: 'nogroup' });
    try {
      const get = await httpRaw(nginx.port, 'GET /length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(get.head).toMatch(/\r\nContent-Length: 11\r\n/i);
      const head = await httpRaw(nginx.port, 'HEAD /length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(head.status).toBe(200);
      expect(head.head).not.toMatch(/content-length: 0/i);
    } finally {
      await s.close();
    }
  });
});

describe('scgi/fetch: the lightweight Response', () => {
  it('behaves as a Response for the app, and instanceof holds both ways', async () => {
    fromFetch(() => new Response('x')); // installs it (overrideGlobalObjects defaults to true)
    const r = new Response('héllo', { status: 201, headers: { 'X-A': '1' } });
    expect(r).toBeInstanceOf(Response);
    expect(r.status).toBe(201);
    expect(r.ok).toBe(true);
    expect(r.headers.get('x-a')).toBe('1');
    expect(r.headers.get('content-type')).toBe('text/plain;charset=UTF-8');
    expect(await r.clone().text()).toBe('héllo');
    expect(await r.text()).toBe('héllo');
    expect(r.bodyUsed).toBe(true);
    const platform = await fetch('data:text/plain,abc');
    expect(platform).toBeInstanceOf(Response);
    expect(Response.json({ a: 1 })).toBeInstanceOf(Response);
    expect(() => new Response('x', { status: 99 })).toThrow(RangeError);
    class Mine extends Response {}
    expect(new Mine('m')).toBeInstanceOf(Response);
  });

  it('a headers change after construction is what goes out', async () => {
    const s = await serve(
      fromFetch(() => {
        const r = new Response('body');
        r.headers.set('x-late', 'yes');
        return r;
      }),
      { address: join(dir.path, 'late.sock'), handleSignals: false },
    );
    try {
      const res = await raw([], join(dir.path, 'late.sock'));
      expect(res.headers['x-late']).toBe('yes');
      expect(res.headers['content-type']).toBe('text/plain;charset=UTF-8');
      expect(res.body.toString()).toBe('body');
    } finally {
      await s.close();
    }
  });
});

describe('scgi/fetch: the Request is lazy (item 6)', () => {
  it('a handler that reads only method and url makes no Headers, AbortController or platform Request', async () => {
    const made = { headers: 0, abort: 0, request: 0 };
    const G = globalThis as unknown as Record<string, unknown>;
    const saved = { Headers: G.Headers, AbortController: G.AbortController, Request: G.Request };
    G.Headers = class extends (saved.Headers as typeof Headers) {
      constructor(...a: ConstructorParameters<typeof Headers>) {
        super(...a);
        made.headers++;
      }
    };
    G.AbortController = class extends (saved.AbortController as typeof AbortController) {
      constructor() {
        super();
        made.abort++;
      }
    };
    G.Request = class extends (saved.Request as typeof Request) {
      constructor(...a: ConstructorParameters<typeof Request>) {
        super(...a);
        made.request++;
      }
    };
    try {
      const { inject } = await import('../src/index.ts');
      let seen = '';
      const h = fromFetch((request) => {
        seen = `${request.method} ${request.url} ${request instanceof (saved.Request as typeof Request)}`;
        return new Response('ok');
      });
      const r = await inject(h, { uri: '/lazy?x=1', headers: { Host: 'lazy.test' } });
      expect(r.body.toString()).toBe('ok');
      expect(seen).toBe('GET http://lazy.test/lazy?x=1 true');
      expect(made).toEqual({ headers: 0, abort: 0, request: 0 });
      // touching them makes them, once
      const h2 = fromFetch((request) => {
        request.headers.get('host');
        request.headers.get('host');
        void request.signal;
        return new Response(request.headers.get('host'));
      });
      expect((await inject(h2, { uri: '/', headers: { Host: 'lazy.test' } })).body.toString()).toBe('lazy.test');
      expect(made).toEqual({ headers: 1, abort: 1, request: 0 });
    } finally {
      Object.assign(G, saved);
    }
  });
});
