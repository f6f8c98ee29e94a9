// A Next.js custom server (next build, then getRequestHandler()) through
// fromNodeListener behind real nginx, compared with the same handler on
// node:http behind proxy_pass (test/frameworks/pair.ts): pages, a Suspense
// page, route handlers (GET, POST, two Set-Cookie, a ReadableStream),
// redirects (307, 308), 404, a static chunk. Next called
// req.headers.hasOwnProperty, which answered 500 on every request before
// req.headers had Object.prototype.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fromNodeListener } from '../../src/adapters/http.ts';
import { compare, startPair, type Pair } from './pair.ts';
import { buildNextApp, isBuilt, NEXT_BUILD_TIMEOUT } from './next-build.ts';

const require = createRequire(import.meta.url);

async function same(pair: Pair, path: string, init?: Parameters<Pair['both']>[1], pieces = false) {
  const [scgi, http] = await pair.both(path, init);
  const c = compare(scgi, http);
  if (pieces) {
    // A streamed page: Next inlines its flight data as it comes, so the order
    // of the pieces varies from request to request on node:http itself
    // (seen: the late Suspense part before or after it). The same pieces.
    const split = (o: object) => {
      const body = (o as { body: string }).body;
      const end = '</body></html>';
      return {
        ...o,
        ends: body.endsWith(end),
        body: body
          .slice(0, body.endsWith(end) ? -end.length : undefined)
          .split(/(?=<script>|<div hidden id="S:)/)
          .sort(),
      };
    };
    expect(split(c.scgi), `${init?.method ?? 'GET'} ${path}`).toEqual(split(c.http));
  } else {
    expect(c.scgi, `${init?.method ?? 'GET'} ${path}`).toEqual(c.http);
  }
  return scgi;
}

describe('Next.js custom server through fromNodeListener, behind nginx, as on node:http', () => {
  let pair: Pair;
  let ownBuild: string | null = null;
  let close: (() => Promise<void>) | null = null;
  beforeAll(async () => {
    let dir = process.env.SCGI_NEXT_DIR;
    if (!isBuilt(dir)) {
      const built = buildNextApp();
      console.log(`next build: ${built.seconds.toFixed(1)} s (set SCGI_NEXT_DIR to reuse a build; scripts/test-all.mjs does)`);
      dir = ownBuild = built.dir;
    }
    const next = require('next') as (o: { dev: boolean; dir: string; quiet: boolean }) => {
      prepare(): Promise<void>;
      getRequestHandler(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
      close(): Promise<void>;
    };
    const app = next({ dev: false, dir, quiet: true });
    await app.prepare();
    close = () => app.close();
    const handle = app.getRequestHandler();
    const listener = (req: IncomingMessage, res: ServerResponse) => void handle(req, res);
    pair = await startPair(fromNodeListener(listener), listener);
  }, NEXT_BUILD_TIMEOUT + 60_000);
  afterAll(async () => {
    await pair?.stop();
    await close?.();
    if (ownBuild !== null) rmSync(ownBuild, { recursive: true, force: true });
  });

  it('a static page', async () => {
    const r = await same(pair, '/');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toContain('hello from next');
  });
  it('a Suspense page (streamed)', async () => {
    const r = await same(pair, '/suspense', {}, true);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toContain('late part');
  });
  it('a route handler: GET with a query', async () => {
    const r = await same(pair, '/api/echo?q=a%20b', { headers: { 'user-agent': 'scgi-test' } });
    expect(JSON.parse(r.body.toString())).toEqual({ method: 'GET', path: '/api/echo', q: 'a b', ua: 'scgi-test' });
  });
  it('a route handler: POST with a body', async () => {
    const r = await same(pair, '/api/echo', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(5000) });
    expect(r.status).toBe(201);
    expect(JSON.parse(r.body.toString())).toMatchObject({ method: 'POST', length: 5000 });
  });
  it('two Set-Cookie', async () => {
    const r = await same(pair, '/api/cookies');
    expect(r.headers.filter(([n]) => n === 'set-cookie').map(([, v]) => v)).toEqual(['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
  });
  it('a ReadableStream route', async () => {
    expect((await same(pair, '/api/stream')).body.toString()).toBe('part 0\npart 1\npart 2\npart 3\n');
  });
  it('redirects: 307 from redirect(), 308 from next.config', async () => {
    expect((await same(pair, '/go')).status).toBe(307);
    expect((await same(pair, '/old')).status).toBe(308);
  });
  it('404', async () => {
    expect((await same(pair, '/nowhere')).status).toBe(404);
  });
  it('a static chunk the page links to', async () => {
    const [page] = await pair.both('/');
    const chunk = /\/_next\/static\/[^"]+\.js/.exec(page.body.toString())?.[0];
    expect(chunk, 'a script in the page').toBeDefined();
    const r = await same(pair, chunk!);
    expect(r.status).toBe(200);
    expect(r.body.length).toBeGreaterThan(0);
  });
});
