// An h3 app through fromNodeListener and a GraphQL Yoga app through
// fromFetch, behind real nginx, each compared with the same app on node:http
// behind proxy_pass (test/frameworks/pair.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { H3, fromNodeHandler, getCookie, readBody, redirect, setCookie, toNodeHandler } from 'h3';
import { fromNodeListener } from '../../src/adapters/http.ts';
import { fromFetch } from '../../src/adapters/fetch.ts';
import { compare, startPair, type Pair } from './pair.ts';

/** The app's answers as both sides gave them: the same (pair.ts's compare), and SCGI's for what the test expects of it. */
async function same(pair: Pair, path: string, init?: Parameters<Pair['both']>[1]) {
  const [scgi, http] = await pair.both(path, init);
  const c = compare(scgi, http);
  expect(c.scgi, `${init?.method ?? 'GET'} ${path}`).toEqual(c.http);
  return scgi;
}

describe('h3 (toNodeHandler) through fromNodeListener, behind nginx, as on node:http', () => {
  let pair: Pair;
  beforeAll(async () => {
    const app = new H3()
      .get('/', () => 'hello from h3')
      .get('/json', (event) => ({ path: event.url.pathname, query: Object.fromEntries(event.url.searchParams), host: event.req.headers.get('host') }))
      .post('/echo', async (event) => ({ got: await readBody(event) }))
      .get('/cookies', (event) => {
        setCookie(event, 'a', '1');
        setCookie(event, 'b', '2', { httpOnly: true });
        return { seen: getCookie(event, 'c') ?? null };
      })
      .get('/redirect', () => redirect('/there', 302))
      // Node middleware inside h3 (an Express/Connect one, mounted with fromNodeHandler), answering later.
      .get(
        '/legacy',
        fromNodeHandler(
          (_req, res) =>
            new Promise<void>((resolve) => {
              setTimeout(() => {
                res.statusCode = 200;
                res.setHeader('content-type', 'text/plain');
                res.end('from node middleware');
                resolve();
              }, 5);
            }),
        ),
      )
      .get(
        '/legacy-redirect',
        fromNodeHandler((_req, res) => {
          res.statusCode = 302;
          res.setHeader('location', '/there');
          res.end();
        }),
      )
      .get('/later', async () => {
        await new Promise((r) => setTimeout(r, 10));
        return 'after a timer';
      })
      .get('/stream', () => {
        const enc = new TextEncoder();
        return new Response(
          new ReadableStream({
            async start(c) {
              for (let i = 0; i < 3; i++) {
                c.enqueue(enc.encode(`chunk ${i}\n`));
                await new Promise((r) => setTimeout(r, 5));
              }
              c.close();
            },
          }),
          { headers: { 'content-type': 'text/plain' } },
        );
      });
    const listener = toNodeHandler(app);
    pair = await startPair(fromNodeListener(listener), listener);
  }, 60_000);
  afterAll(() => pair?.stop());

  it('GET /: text, with Content-Length', async () => {
    const r = await same(pair, '/');
    expect(r.body.toString()).toBe('hello from h3');
    expect(r.headers.find(([n]) => n === 'content-length')?.[1]).toBe('13');
  });
  it('GET /json?x=1', async () => {
    const r = await same(pair, '/json?x=1&y=%20');
    expect(JSON.parse(r.body.toString())).toMatchObject({ path: '/json', query: { x: '1', y: ' ' } });
  });
  it('POST /echo (JSON body)', async () => {
    const r = await same(pair, '/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":[1,2]}' });
    expect(JSON.parse(r.body.toString())).toEqual({ got: { a: [1, 2] } });
  });
  it('two Set-Cookie, a Cookie read', async () => {
    const r = await same(pair, '/cookies', { headers: { cookie: 'c=3' } });
    expect(r.headers.filter(([n]) => n === 'set-cookie')).toHaveLength(2);
    expect(JSON.parse(r.body.toString())).toEqual({ seen: '3' });
  });
  it('a 302', async () => {
    expect((await same(pair, '/redirect')).status).toBe(302);
  });
  it('an answer after a timer (Content-Length as node:http)', async () => {
    expect((await same(pair, '/later')).body.toString()).toBe('after a timer');
  });
  it('node middleware (fromNodeHandler) answering after a timer, and an empty end() on a 302: Content-Length as node:http', async () => {
    const r = await same(pair, '/legacy');
    expect(r.body.toString()).toBe('from node middleware');
    expect(r.headers.find(([n]) => n === 'content-length')?.[1]).toBe('20');
    const red = await same(pair, '/legacy-redirect');
    expect(red.status).toBe(302);
    expect(red.headers.find(([n]) => n === 'content-length')?.[1]).toBe('0');
  });
  it('a streamed ReadableStream response', async () => {
    expect((await same(pair, '/stream')).body.toString()).toBe('chunk 0\nchunk 1\nchunk 2\n');
  });
  it('404 and HEAD', async () => {
    expect((await same(pair, '/nope')).status).toBe(404);
    expect((await same(pair, '/', { method: 'HEAD' })).body.length).toBe(0);
  });
});

describe('GraphQL Yoga through fromFetch, behind nginx, as on node:http', () => {
  let pair: Pair;
  beforeAll(async () => {
    // Imported by a name in a variable: graphql-yoga's types reach
    // @whatwg-node/fetch's `/// <reference lib="dom" />`, which would put the
    // DOM's fetch types over @types/node's in the whole project's typecheck.
    const name = 'graphql-yoga';
    const { createSchema, createYoga } = (await import(name)) as {
      createSchema(o: { typeDefs: string; resolvers: object }): unknown;
      createYoga(o: object): { fetch(request: Request): Promise<Response>; (req: IncomingMessage, res: ServerResponse): void };
    };
    const yoga = createYoga({
      schema: createSchema({
        typeDefs: 'type Query { hello(name: String): String!, add(a: Int!, b: Int!): Int! }',
        resolvers: {
          Query: {
            hello: (_: unknown, { name }: { name?: string }) => `hello ${name ?? 'world'}`,
            add: (_: unknown, { a, b }: { a: number; b: number }) => a + b,
          },
        },
      }),
      graphiql: false,
      logging: false,
    });
    // Yoga is both: a fetch handler (yoga.fetch) and a node listener (yoga itself).
    pair = await startPair(
      fromFetch((request) => yoga.fetch(request)),
      (req, res) => void yoga(req, res),
    );
  }, 60_000);
  afterAll(() => pair?.stop());

  it('POST /graphql, a query with variables', async () => {
    const r = await same(pair, '/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query: 'query($n: String) { hello(name: $n) add(a: 2, b: 3) }', variables: { n: 'scgi' } }),
    });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toEqual({ data: { hello: 'hello scgi', add: 5 } });
  });
  it('GET /graphql?query=...', async () => {
    const r = await same(pair, `/graphql?query=${encodeURIComponent('{ hello }')}`, { headers: { accept: 'application/json' } });
    expect(JSON.parse(r.body.toString())).toEqual({ data: { hello: 'hello world' } });
  });
  it('a query with an error', async () => {
    const r = await same(pair, '/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ nope }"}' });
    expect(JSON.parse(r.body.toString()).errors[0].message).toMatch(/nope/);
  });
  it('not found', async () => {
    expect((await same(pair, '/elsewhere')).status).toBe(404);
  });
});
