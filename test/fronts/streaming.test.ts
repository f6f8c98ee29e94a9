// Streaming through a real nginx (issue 21 item 7): with nginx's default
// `scgi_buffering on` an SSE stream reaches the browser only when a buffer
// fills or the response ends; with `scgi_buffering off` in the location, or
// `X-Accel-Buffering: no` from the app (the README's two ways), each event
// reaches the browser while the response is still open.
//
// No clock: the app sends the first event, then waits until the browser
// side says it got it (or, bounded, 3 s pass) before sending the rest and
// ending. The test asserts who released the app: the browser (streamed) or
// the time bound (held back by nginx).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { serve, type Handler, type ScgiServer } from '../../src/index.ts';
import { fromNodeListener } from '../../src/adapters/http.ts';
import { fromFetch } from '../../src/adapters/fetch.ts';
import { tempDir, TRANSPORTS } from '../helpers.ts';
import { startNginx, type Nginx } from './nginx.ts';

const HOLD_MS = 3000;

/** Per request (by ?id=): the browser side's "got the first event", and how the app was released. */
const gates = new Map<string, { got: () => void; released: Promise<'browser' | 'timeout'> }>();
function gate(id: string): { got: () => void; released: Promise<'browser' | 'timeout'> } {
  let g = gates.get(id);
  if (g === undefined) {
    let got!: () => void;
    const released = new Promise<'browser' | 'timeout'>((resolve) => {
      got = () => resolve('browser');
      setTimeout(() => resolve('timeout'), HOLD_MS).unref();
    });
    g = { got, released };
    gates.set(id, g);
  }
  return g;
}

const idOf = (url: string) => new URL(url, 'http://x').searchParams.get('id') ?? '';

/** An SSE route as an Express/Next app writes one: node listener, res.write per event. */
const nodeApp = fromNodeListener((req, res) => {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    ...(req.url!.includes('accel=no') ? { 'X-Accel-Buffering': 'no' } : {}),
  });
  res.write('data: one\n\n');
  void gate(idOf(req.url!)).released.then((by) => {
    res.write(`data: released by ${by}\n\n`);
    res.end('data: end\n\n');
  });
});

/** The same route as a fetch handler (Hono, Yoga): a ReadableStream body. */
const fetchApp = fromFetch((request) => {
  const url = new URL(request.url);
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(c) {
      c.enqueue(enc.encode('data: one\n\n'));
      const by = await gate(idOf(url.pathname + url.search)).released;
      c.enqueue(enc.encode(`data: released by ${by}\n\n`));
      c.enqueue(enc.encode('data: end\n\n'));
      c.close();
    },
  });
  const headers: Record<string, string> = { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' };
  if (url.searchParams.get('accel') === 'no') headers['X-Accel-Buffering'] = 'no';
  return new Response(body, { headers });
});

/** GET through nginx; calls gate(id).got() on the first event; the whole body. */
function sse(port: number, path: string, id: string): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path: `${path}${path.includes('?') ? '&' : '?'}id=${id}`, headers: { Accept: 'text/event-stream' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
        if (body.includes('data: one\n\n')) gate(id).got();
      });
      res.once('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
    })
      .once('error', reject)
      .end();
  });
}

describe.each(TRANSPORTS)('SSE through nginx (%s transport)', (transport) => {
  const dir = tempDir('scgi-stream-');
  const apps: ScgiServer[] = [];
  let nginx: Nginx;
  beforeAll(async () => {
    const locations: string[] = [];
    for (const [name, handler] of [
      ['node', nodeApp],
      ['fetch', fetchApp],
    ] as [string, Handler][]) {
      const sock = join(dir.path, `${name}.sock`);
      apps.push(await serve(handler, { address: sock, transport, socketGroup: 'nogroup', handleSignals: false }));
      // The README's setting, and nginx's default for comparison.
      locations.push(`
    location /${name}/unbuffered {
      include scgi_params;
      scgi_pass unix:${sock};
      scgi_buffering off;
    }
    location /${name}/ {
      include scgi_params;
      scgi_pass unix:${sock};
    }`);
    }
    nginx = await startNginx(dir.path, locations.join('\n'));
  });
  afterAll(async () => {
    await nginx?.stop();
    await Promise.all(apps.map((a) => a.close()));
    dir.cleanup();
  });

  let n = 0;
  for (const kind of ['node', 'fetch']) {
    it(`${kind}: scgi_buffering off: the first event reaches the browser while the stream is open`, async () => {
      const r = await sse(nginx.port, `/${kind}/unbuffered`, `${transport}-${kind}-off-${n++}`);
      expect(r.status).toBe(200);
      expect(r.type).toBe('text/event-stream');
      expect(r.body).toBe('data: one\n\ndata: released by browser\n\ndata: end\n\n');
    });

    it(`${kind}: X-Accel-Buffering: no from the app, nginx's default buffering: the same`, async () => {
      const r = await sse(nginx.port, `/${kind}/stream?accel=no`, `${transport}-${kind}-accel-${n++}`);
      expect(r.status).toBe(200);
      expect(r.body).toBe('data: one\n\ndata: released by browser\n\ndata: end\n\n');
    });

    it(`${kind}: neither (nginx's default scgi_buffering on): held back until the response ends, which is why the README says so`, async () => {
      const r = await sse(nginx.port, `/${kind}/stream`, `${transport}-${kind}-default-${n++}`);
      expect(r.status).toBe(200);
      expect(r.body).toBe('data: one\n\ndata: released by timeout\n\ndata: end\n\n');
    });
  }
});
