// scgi/http and scgi/fetch: real Express and Hono apps, unchanged, over SCGI,
// through inject() and through a real nginx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, inject, type Handler, type ScgiServer } from '../src/index.ts';
import { fromNodeListener } from '../src/adapters/http.ts';
import { fromFetch } from '../src/adapters/fetch.ts';
import expressApp from '../examples/express.js';
import honoApp from '../examples/hono.js';
import helloExample from '../examples/hello.js';
import echoExample from '../examples/echo.js';
import { bigBody, tempDir, waitFor } from './helpers.ts';
import { startNginx, unixLocation, type Nginx } from './fronts/nginx.ts';

// The examples' JSDoc types come from the built package ('scgi'); same shapes.
const hello = helloExample as unknown as Handler;
const echo = echoExample as unknown as Handler;

const EXPRESS_SRC = readFileSync(fileURLToPath(new URL('../examples/express.js', import.meta.url)), 'utf8');

describe('inject (no sockets)', () => {
  it('a raw handler', async () => {
    const res = await inject(hello, { uri: '/hi', body: 'abc' });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toMatch(/^Hello from scgi!\nPOST \/hi \(3 body bytes, parser: (js|native)\)\n$/);
  });

  it('the echo example streams the body back', async () => {
    const res = await inject(echo, { uri: '/e', body: 'payload' });
    expect(res.body.toString()).toContain('REQUEST_URI=/e\n');
    expect(res.body.toString().endsWith('\n\npayload')).toBe(true);
  });

  it('an Express app', async () => {
    const handler = fromNodeListener(expressApp);
    const a = await inject(handler, { uri: '/users/7?x=1' });
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body.toString())).toEqual({ id: '7', query: { x: '1' } });
    const b = await inject(handler, { method: 'POST', uri: '/echo', headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' });
    expect(b.status).toBe(201);
    expect(JSON.parse(b.body.toString())).toEqual({ received: { a: 1 } });
    const c = await inject(handler, { uri: '/fail' });
    expect(c.status).toBe(500);
    expect(JSON.parse(c.body.toString())).toEqual({ error: 'something broke' });
  });

  it('a Hono app', async () => {
    const handler = fromFetch(honoApp);
    const a = await inject(handler, { uri: '/json/ann?q=2', headers: { Host: 'example.test' } });
    expect(JSON.parse(a.body.toString())).toEqual({ hello: 'ann', q: '2' });
    const b = await inject(handler, { uri: '/', headers: { Host: 'example.test' } });
    expect(b.body.toString()).toBe('Hello from Hono over SCGI: http://example.test/\n');
    const s = await inject(handler, { uri: '/stream' });
    expect(s.body.toString()).toBe('chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
  });

  it('bad input: rejects', async () => {
    await expect(inject(hello, { uri: '/x' }, { maxHeaderSize: 10 })).rejects.toMatchObject({ code: 'ERR_SCGI_HEADER_TOO_LARGE' });
  });
});

describe('Koa and Fastify through scgi/http, as the README shows', () => {
  it('Koa: fromNodeListener(app.callback())', async () => {
    const koa: string = 'koa'; // no @types/koa: the module is typed any here
    const { default: Koa } = await import(koa);
    const app = new Koa();
    app.use(async (ctx: { status: number; set(n: string, v: string): void; body: unknown; path: string; query: Record<string, string> }) => {
      ctx.status = 201;
      ctx.set('X-Koa', '1');
      ctx.body = { path: ctx.path, q: ctx.query.q };
    });
    const res = await inject(fromNodeListener(app.callback()), { uri: '/k?q=2' });
    expect(res.status).toBe(201);
    expect(res.headers['x-koa']).toBe('1');
    expect(JSON.parse(res.body.toString())).toEqual({ path: '/k', q: '2' });
  });

  it('Fastify: the handler its serverFactory hands over', async () => {
    const http = await import('node:http');
    const { default: Fastify } = await import('fastify');
    let handle!: (req: unknown, res: unknown) => void;
    const app = Fastify({
      serverFactory: (handler) => {
        handle = handler as never;
        return http.createServer(handler);
      },
    });
    app.post('/f', async (req) => ({ got: req.body }));
    await app.ready();
    const res = await inject(
      fromNodeListener((req, res) => handle(req, res)),
      {
        method: 'POST',
        uri: '/f',
        headers: { 'Content-Type': 'application/json' },
        body: '{"a":1}',
      },
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ got: { a: 1 } });
    await app.close();
  });
});

describe('scgi/http details', () => {
  it('req looks like http.IncomingMessage, res like http.ServerResponse', async () => {
    let seen: Record<string, unknown> = {};
    const handler = fromNodeListener((req, res) => {
      seen = {
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        headers: req.headers,
        remoteAddress: req.socket.remoteAddress,
        encrypted: (req.socket as unknown as { encrypted: boolean }).encrypted,
      };
      res.statusCode = 418;
      res.statusMessage = 'Short And Stout';
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.setHeader('X-Test', 'yes');
      expect(res.getHeader('x-test')).toBe('yes');
      expect(res.hasHeader('X-Test')).toBe(true);
      res.removeHeader('X-Test');
      res.end('teapot');
    });
    const res = await inject(handler, {
      uri: '/p?q=1',
      headers: [
        ['HTTPS', 'on'],
        ['REMOTE_ADDR', '10.1.2.3'],
        ['HTTP_HOST', 'h.test'],
        ['HTTP_X_DUP', 'one'],
        ['HTTP_X_DUP', 'two'],
        ['HTTP_COOKIE', 'a=1'],
        ['HTTP_COOKIE', 'b=2'],
      ],
    });
    expect(res.status).toBe(418);
    expect(res.statusText).toBe('Short And Stout');
    expect(res.rawHeaders.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
    expect(res.headers['x-test']).toBeUndefined();
    expect(res.headers.connection).toBeUndefined();
    expect(res.body.toString()).toBe('teapot');
    expect(seen).toMatchObject({
      method: 'GET',
      url: '/p?q=1',
      httpVersion: '1.1',
      remoteAddress: '10.1.2.3',
      encrypted: true,
      headers: { host: 'h.test', 'x-dup': 'one, two', cookie: 'a=1; b=2' },
    });
  });

  // inject's in-memory socket never pushes back: test/backpressure.test.ts checks backpressure over a real socket.
  it('streams a response written in a drain-respecting loop, with no chunked encoding', async () => {
    const handler = fromNodeListener(async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      const chunk = Buffer.alloc(65536, 7);
      for (let i = 0; i < 16; i++) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      res.end();
    });
    const res = await inject(handler);
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.body.length).toBe(16 * 65536);
  });

  it('a listener that throws gets a 500 and the server carries on', async () => {
    const handler = fromNodeListener(() => {
      throw new Error('nope');
    });
    expect((await inject(handler, {}, { onError: () => {} })).status).toBe(500);
  });
});

describe('scgi/fetch details', () => {
  it('Request: URL, method, headers, body stream', async () => {
    let seen: Record<string, unknown> = {};
    const handler = fromFetch(async (request) => {
      seen = {
        url: request.url,
        method: request.method,
        type: request.headers.get('content-type'),
        body: await request.text(),
      };
      return new Response('ok', {
        status: 201,
        statusText: 'Made',
        headers: [
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
        ],
      });
    });
    const res = await inject(handler, {
      method: 'PUT',
      uri: '/thing?x=1',
      headers: { 'Content-Type': 'text/plain', REQUEST_SCHEME: 'https', HTTP_HOST: 'api.test' },
      body: 'data',
    });
    expect(seen).toEqual({ url: 'https://api.test/thing?x=1', method: 'PUT', type: 'text/plain', body: 'data' });
    expect(res.status).toBe(201);
    expect(res.statusText).toBe('Made');
    expect(res.headers['content-length']).toBe('2');
    expect(res.rawHeaders.filter(([n]) => n === 'set-cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
  });

  it('a 3 MiB body streams through request.body', async () => {
    const body = bigBody();
    const handler = fromFetch(async (request) => {
      const hash = createHash('sha256');
      let n = 0;
      for await (const chunk of request.body!) {
        hash.update(chunk);
        n += chunk.length;
      }
      return Response.json({ n, sha: hash.digest('hex') });
    });
    const res = await inject(handler, { method: 'POST', body });
    expect(JSON.parse(res.body.toString())).toEqual({ n: body.length, sha: createHash('sha256').update(body).digest('hex') });
  });

  it('a handler returning something else than a Response → 500, onError gets ERR_SCGI_INVALID_APP', async () => {
    const handler = fromFetch((() => 'not a response') as never);
    const errors: unknown[] = [];
    expect((await inject(handler, {}, { onError: (err) => errors.push(err) })).status).toBe(500);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ name: 'ScgiError', code: 'ERR_SCGI_INVALID_APP' });
  });
});

/**
 * A Response from another fetch implementation (as @whatwg-node/fetch makes
 * for GraphQL Yoga): not an instance of the global class, its own iterable
 * Headers, a ReadableStream body.
 */
class ForeignHeaders {
  readonly #pairs: [string, string][];
  constructor(pairs: [string, string][]) {
    this.#pairs = pairs.map(([n, v]) => [n.toLowerCase(), v]);
  }
  get(name: string): string | null {
    const all = this.#pairs.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v);
    return all.length === 0 ? null : all.join(', ');
  }
  has(name: string): boolean {
    return this.get(name) !== null;
  }
  *[Symbol.iterator](): IterableIterator<[string, string]> {
    yield* this.#pairs;
  }
}
function foreignResponse(status: number, pairs: [string, string][], chunks: string[] | null): object {
  const body =
    chunks === null
      ? null
      : new ReadableStream<Uint8Array>({
          start(c) {
            for (const chunk of chunks) c.enqueue(new TextEncoder().encode(chunk));
            c.close();
          },
        });
  return { status, statusText: '', headers: new ForeignHeaders(pairs), body, ok: status < 300, bodyUsed: false };
}

/** The same fetch handler through @hono/node-server on node:http: status, headers (but Date) and body. */
async function viaHono(app: (request: Request) => unknown, method = 'GET'): Promise<{ status: number; headers: [string, string][]; body: string }> {
  const { getRequestListener } = await import('@hono/node-server');
  const { createServer } = await import('node:http');
  const server = createServer(getRequestListener(app as never));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    return await new Promise((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, method, path: '/' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => {
          const headers: [string, string][] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
          resolve({ status: res.statusCode!, headers, body: Buffer.concat(chunks).toString() });
        });
      })
        .once('error', reject)
        .end();
    });
  } finally {
    server.close();
  }
}

/** What both sides send of the app's own fields (node:http adds date, connection, keep-alive, transfer-encoding). */
function appFields(headers: [string, string][]): [string, string][] {
  return headers.filter(([n]) => !['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'].includes(n));
}

describe('fromFetch: a Response from another fetch implementation (status, headers, body), as @hono/node-server takes it', () => {
  const cases: [string, () => object, string][] = [
    [
      'a streamed body, two Set-Cookie',
      () =>
        foreignResponse(
          201,
          [
            ['Content-Type', 'application/json'],
            ['Set-Cookie', 'a=1'],
            ['Set-Cookie', 'b=2'],
            ['X-Yoga', 'y'],
          ],
          ['{"data":', '{"x":1}}'],
        ),
      'GET',
    ],
    ['no body', () => foreignResponse(204, [['X-Empty', '1']], null), 'GET'],
    ['a redirect without a body', () => foreignResponse(302, [['Location', '/there']], null), 'GET'],
    ['HEAD with a body', () => foreignResponse(200, [['Content-Type', 'text/plain']], ['hello']), 'HEAD'],
    ['a promise of one', () => Promise.resolve(foreignResponse(200, [['Content-Type', 'text/plain']], ['ok'])) as never, 'GET'],
  ];
  for (const [name, make, method] of cases) {
    it(name, async () => {
      expect(make()).not.toBeInstanceOf(Response);
      const hono = await viaHono(make, method);
      const errors: unknown[] = [];
      const ours = await inject(fromFetch(make as never), { method }, { onError: (err) => errors.push(err) });
      expect(errors).toEqual([]);
      expect(ours.status).toBe(hono.status);
      expect(appFields(ours.rawHeaders.map(([n, v]) => [n.toLowerCase(), v]))).toEqual(appFields(hono.headers));
      expect(ours.body.toString()).toBe(hono.body);
      // (HEAD: a stream body is not read for its length, for the global Response either.)
      if (method !== 'HEAD' && hono.headers.some(([n]) => n === 'content-length'))
        expect(ours.headers['content-length']).toBe(hono.headers.find(([n]) => n === 'content-length')![1]);
    });
  }

  it('what is not Response-shaped is still ERR_SCGI_INVALID_APP (no status, a status out of range, a body that is no stream)', async () => {
    for (const bad of [
      {},
      { status: 200 },
      { status: 'ok', headers: {}, body: null },
      { status: 99, headers: {}, body: null },
      { status: 200, headers: {}, body: 'text' },
    ]) {
      const errors: unknown[] = [];
      const r = await inject(fromFetch((() => bad) as never), {}, { onError: (err) => errors.push(err) });
      expect(r.status, JSON.stringify(bad)).toBe(500);
      expect(errors[0]).toMatchObject({ name: 'ScgiError', code: 'ERR_SCGI_INVALID_APP' });
      expect((errors[0] as Error).message).toMatch(/Response/);
    }
  });
});

describe("the adapters' own errors are ScgiErrors", () => {
  it('fromFetch and fromNodeListener of something that is no app: ERR_SCGI_INVALID_APP', () => {
    for (const bad of [42, null, {}, 'app']) {
      expect(() => fromFetch(bad as never)).toThrow(expect.objectContaining({ name: 'ScgiError', code: 'ERR_SCGI_INVALID_APP' }));
      expect(() => fromNodeListener(bad as never)).toThrow(expect.objectContaining({ name: 'ScgiError', code: 'ERR_SCGI_INVALID_APP' }));
    }
  });
});

describe('through nginx', () => {
  const dir = tempDir('scgi-adapters-');
  let nginx: Nginx;
  let nginxExpress: Nginx;
  const servers: ScgiServer[] = [];

  beforeAll(async () => {
    const common = { socketGroup: 'nogroup', handleSignals: false, onError: () => {} } as const;
    servers.push(await serve(fromNodeListener(expressApp), { ...common, address: join(dir.path, 'express.sock') }));
    servers.push(await serve(fromFetch(honoApp), { ...common, address: join(dir.path, 'hono.sock') }));
    const { mkdirSync, chmodSync } = await import('node:fs');
    chmodSync(dir.path, 0o711); // nginx's workers (nobody) must reach the sockets
    mkdirSync(join(dir.path, 'e'));
    mkdirSync(join(dir.path, 'h'));
    // one nginx per app, each with the plain `location /` users write
    nginxExpress = await startNginx(join(dir.path, 'e'), unixLocation(join(dir.path, 'express.sock')));
    nginx = await startNginx(join(dir.path, 'h'), unixLocation(join(dir.path, 'hono.sock')));
  });

  afterAll(async () => {
    await nginx?.stop();
    await nginxExpress?.stop();
    await Promise.all(servers.map((s) => s.close()));
    dir.cleanup();
  });

  it('Express: routing, cookies, JSON body, redirect, sendFile, error middleware', async () => {
    const home = await fetch(`${nginxExpress.url}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toBe('Hello from Express over SCGI, 127.0.0.1 asked for /\n');
    expect(home.headers.getSetCookie()).toEqual(['seen=1; Path=/']);
    const user = await fetch(`${nginxExpress.url}/users/42?a=b`);
    expect(await user.json()).toEqual({ id: '42', query: { a: 'b' } });
    const posted = await fetch(`${nginxExpress.url}/echo`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ big: 'x'.repeat(100_000) }),
    });
    expect(posted.status).toBe(201);
    expect(((await posted.json()) as { received: { big: string } }).received.big.length).toBe(100_000);
    const moved = await fetch(`${nginxExpress.url}/old`, { redirect: 'manual' });
    expect(moved.status).toBe(301);
    expect(moved.headers.get('location')).toBe('/');
    const file = await fetch(`${nginxExpress.url}/file`);
    expect(file.status).toBe(200);
    expect(await file.text()).toBe(EXPRESS_SRC);
    const failed = await fetch(`${nginxExpress.url}/fail`);
    expect(failed.status).toBe(500);
    expect(await failed.json()).toEqual({ error: 'something broke' });
  });

  it('Hono: routes, JSON, streaming response', async () => {
    const home = await fetch(`${nginx.url}/`);
    expect(await home.text()).toBe(`Hello from Hono over SCGI: http://127.0.0.1/\n`);
    const json = await fetch(`${nginx.url}/json/bo?q=z`);
    expect(await json.json()).toEqual({ hello: 'bo', q: 'z' });
    const posted = await fetch(`${nginx.url}/echo`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '[1,2]' });
    expect(posted.status).toBe(201);
    expect(await posted.json()).toEqual({ received: [1, 2] });
    const streamed = await fetch(`${nginx.url}/stream`);
    expect(await streamed.text()).toBe('chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
  });

  it('Hono: c.req.raw.signal aborts when the browser goes away', async () => {
    (globalThis as { __honoAborted?: boolean }).__honoAborted = undefined;
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${nginx.url}/wait`);
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    // nginx closes the upstream connection when the client goes away
    // (proxy_ignore_client_abort off), and the handler's signal fires.
    await waitFor(() => (globalThis as { __honoAborted?: boolean }).__honoAborted !== undefined, 6000);
    expect((globalThis as { __honoAborted?: boolean }).__honoAborted).toBe(true);
  });
});
