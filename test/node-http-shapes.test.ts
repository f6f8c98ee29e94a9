// scgi/http's request and response against a real node:http pair (issue 21):
// the shapes of IncomingMessage's fields (Next.js calls
// req.headers.hasOwnProperty, which an Object.create(null) object lacks).
import { describe, expect, it } from 'vitest';
import { createServer, get, type IncomingMessage, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inject } from '../src/index.ts';
import { fromNodeListener } from '../src/adapters/http.ts';

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
