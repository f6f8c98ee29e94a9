// scgi/http's request and response against a real node:http pair (issue 21):
// the shapes of IncomingMessage's fields (Next.js calls
// req.headers.hasOwnProperty, which an Object.create(null) object lacks) and
// the Content-Length node:http sends.
import { describe, expect, it } from 'vitest';
import { createServer, get, request as httpRequest, type IncomingMessage, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inject } from '../src/index.ts';
import { fromNodeListener } from '../src/adapters/http.ts';
import { scgiRequest, testServers, TRANSPORTS } from './helpers.ts';

/** The first request a real node:http server gets, handed to `listener`. */
function onNodeHttp(listener: RequestListener, headers: Record<string, string | string[]> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      try {
        listener(req, res);
      } catch (err) {
        reject(err);
      }
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      get({ host: '127.0.0.1', port, path: '/', headers }, (r) => {
        r.resume();
        r.once('end', () => server.close(() => resolve()));
      }).once('error', reject);
    });
  });
}

/** Fields that are the transport's own objects (a net.Socket there, the CGI socket here) or stream internals. */
const INTERNAL = new Set(['socket', 'client', '_readableState', '_events', '_eventsCount', '_maxListeners']);
/** Getters of IncomingMessage that Object.keys does not list. */
const GETTERS = ['headers', 'headersDistinct', 'trailers', 'trailersDistinct', 'connection'];

/** Each field's kind: its type and, for an object, array / its prototype's constructor / null-prototype. */
function shapes(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  const r = req as unknown as Record<string, unknown>;
  for (const k of new Set([...Object.keys(req), ...GETTERS])) {
    if (INTERNAL.has(k)) continue;
    const v = r[k];
    if (k === 'connection') {
      out[k] = v === req.socket ? 'the socket' : typeof v;
      continue;
    }
    out[k] = v !== null && typeof v === 'object' ? (Array.isArray(v) ? 'array' : (Object.getPrototypeOf(v)?.constructor?.name ?? 'null-prototype')) : typeof v;
  }
  return out;
}

describe('scgi/http: IncomingMessage as node:http gives it', () => {
  it('every field has the type and prototype node:http gives it (req.headers is a plain object: hasOwnProperty works)', async () => {
    let real: Record<string, string> = {};
    let realHasOwn: unknown;
    await onNodeHttp(
      (req, res) => {
        real = shapes(req);
        // biome-ignore lint/suspicious/noPrototypeBuiltins: the call Next.js makes
        realHasOwn = (req.headers as { hasOwnProperty(k: string): boolean }).hasOwnProperty('x-a');
        res.end();
      },
      { 'x-a': '1', cookie: 'a=1' },
    );
    let ours: Record<string, string> = {};
    let oursHasOwn: unknown;
    const r = await inject(
      fromNodeListener((req, res) => {
        ours = shapes(req);
        // biome-ignore lint/suspicious/noPrototypeBuiltins: the call Next.js makes
        oursHasOwn = (req.headers as { hasOwnProperty?: (k: string) => boolean }).hasOwnProperty?.('x-a');
        res.end();
      }),
      { uri: '/', headers: { 'X-A': '1', Cookie: 'a=1' } },
    );
    expect(r.status).toBe(200);
    expect(real.headers).toBe('Object'); // the reference itself, on this Node version
    expect(ours).toEqual(real);
    expect(oursHasOwn).toBe(realHasOwn);
    expect(oursHasOwn).toBe(true);
  });

  it("a header named like an Object.prototype member ('constructor', repeated) gets node:http's value", async () => {
    let real: unknown;
    await onNodeHttp(
      (req, res) => {
        real = req.headers.constructor;
        res.end();
      },
      { constructor: ['a', 'b'] },
    );
    let ours: unknown;
    // nginx passes a repeated header as one pair per line.
    await inject(
      fromNodeListener((req, res) => {
        ours = req.headers.constructor;
        res.end();
      }),
      {
        uri: '/',
        headers: [
          ['constructor', 'a'],
          ['constructor', 'b'],
        ],
      },
    );
    expect(real).toBe('a, b');
    expect(ours).toBe(real);
  });
});

/** One HTTP/1.1 request to a real node:http server running `listener`: status, content-length and body. */
function viaNodeHttp(listener: RequestListener, method: string): Promise<{ status: number; length: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const server = createServer(listener);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      const req = httpRequest({ host: '127.0.0.1', port, method, path: '/' }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.once('end', () =>
          server.close(() => resolve({ status: r.statusCode!, length: r.headers['content-length'], body: Buffer.concat(chunks).toString('latin1') })),
        );
      });
      req.once('error', reject);
      req.end();
    });
  });
}

/** Responses where node:http sends a Content-Length and where it does not (it frames those chunked; SCGI sends them close-delimited). */
const LENGTH_CASES: [string, string, RequestListener][] = [
  ['end(body) at once', 'GET', (_q, s) => s.end('hello')],
  ['end(body) after a microtask', 'GET', (_q, s) => queueMicrotask(() => s.end('hello'))],
  ['end(body) after a timer', 'GET', (_q, s) => void setTimeout(() => s.end(Buffer.from('héllo')), 5)],
  [
    'end(body) after setHeader, after a timer',
    'GET',
    (_q, s) => {
      s.setHeader('Content-Type', 'text/plain');
      setTimeout(() => s.end('héllo', 'latin1'), 5);
    },
  ],
  [
    'an empty end() on a 302',
    'GET',
    (_q, s) => {
      s.statusCode = 302;
      s.setHeader('Location', '/there');
      s.end();
    },
  ],
  [
    'an empty end() on a 302 after a timer',
    'GET',
    (_q, s) => {
      setTimeout(() => {
        s.writeHead(302, { Location: '/there' }).end();
      }, 5);
    },
  ],
  ['an empty end() after a timer', 'GET', (_q, s) => void setTimeout(() => s.end(), 5)],
  ['end(body) on HEAD', 'HEAD', (_q, s) => s.end('hello')],
  [
    'a 204',
    'GET',
    (_q, s) => {
      s.statusCode = 204;
      s.end();
    },
  ],
  [
    'a 304 after a timer',
    'GET',
    (_q, s) => {
      setTimeout(() => {
        s.statusCode = 304;
        s.end();
      }, 5);
    },
  ],
  [
    'writeHead(200) then end(body)',
    'GET',
    (_q, s) => {
      s.writeHead(200);
      s.end('hello');
    },
  ],
  [
    'write then end',
    'GET',
    (_q, s) => {
      s.write('hel');
      s.end('lo');
    },
  ],
  [
    'flushHeaders then end(body)',
    'GET',
    (_q, s) => {
      s.flushHeaders();
      s.end('hello');
    },
  ],
  [
    'removeHeader(content-length) then end(body)',
    'GET',
    (_q, s) => {
      s.setHeader('Content-Length', '5');
      s.removeHeader('Content-Length');
      s.end('hello');
    },
  ],
  [
    'an explicit Content-Length',
    'GET',
    (_q, s) => {
      setTimeout(() => {
        s.setHeader('Content-Length', '5');
        s.end('hello');
      }, 5);
    },
  ],
  [
    'an explicit Transfer-Encoding: chunked (the body still arrives as it is)',
    'GET',
    (_q, s) => {
      s.setHeader('Transfer-Encoding', 'chunked');
      s.write('hel');
      s.end('lo');
    },
  ],
];

describe.each(TRANSPORTS)('scgi/http: Content-Length whenever node:http sends it (%s transport)', (transport) => {
  const srv = testServers({ transport });
  for (const [name, method, listener] of LENGTH_CASES) {
    it(name, async () => {
      const real = await viaNodeHttp(listener, method);
      const { address } = await srv.start(fromNodeListener(listener));
      const ours = await scgiRequest({ path: address }, { method, uri: '/' });
      expect(ours.error).toBe(null);
      expect({ status: ours.status, length: ours.headers['content-length'], body: ours.body.toString('latin1') }).toEqual(real);
      expect(ours.headers['transfer-encoding']).toBe(undefined);
    });
  }
  // nginx forwards an HTTP/1.0 client's SERVER_PROTOCOL; node:http's
  // ServerResponse then drops Content-Length wherever it would have chunked.
  // The front, not the app, speaks to that client: it gets the length an
  // HTTP/1.1 request gets, so nginx can send it on (src/adapters/http.ts).
  for (const [name, method, listener] of LENGTH_CASES) {
    it(`SERVER_PROTOCOL HTTP/1.0: ${name}`, async () => {
      const real = await viaNodeHttp(listener, method);
      const { address } = await srv.start(fromNodeListener(listener));
      const ours = await scgiRequest({ path: address }, { method, uri: '/', headers: [['SERVER_PROTOCOL', 'HTTP/1.0']] });
      expect(ours.error).toBe(null);
      expect({ status: ours.status, length: ours.headers['content-length'], body: ours.body.toString('latin1') }).toEqual(real);
    });
  }
  it('the cases cover both answers of node:http', async () => {
    const lengths = await Promise.all(LENGTH_CASES.map(([, method, l]) => viaNodeHttp(l, method).then((r) => r.length)));
    expect(lengths).toContain(undefined);
    expect(lengths).toContain('0');
    expect(lengths).toContain('5');
  });
});
