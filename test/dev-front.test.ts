// The development HTTP front (`scgi serve --http`, src/cli/dev-front.ts): a NUL
// in any CGI variable is refused (400), never passed on as a separator that
// forges variables; an absolute-form request target is handled as nginx
// handles it (checked against a real nginx with the distribution's scgi_params).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { serve, type ScgiServer } from '../src/index.ts';
import { startDevFront } from '../src/cli/dev-front.ts';
import { tempDir } from './helpers.ts';
import { startNginx, unixLocation, type Nginx } from './fronts/nginx.ts';

const dir = tempDir('scgi-devfront-');
const SOCK = join(dir.path, 'app.sock');
let app: ScgiServer;
let front: Server;
let frontPort: number;
let nginx: Nginx;
const seen: Record<string, string>[] = [];

beforeAll(async () => {
  app = await serve(
    (headers, client) => {
      const vars = Object.fromEntries(headers.entries());
      seen.push(vars);
      client.writeHead(200, { 'Content-Type': 'application/json' });
      client.end(JSON.stringify(vars));
    },
    { address: SOCK, handleSignals: false, socketGroup: 'nogroup' },
  );
  front = await startDevFront({ app: SOCK, listen: { host: '127.0.0.1', port: 0 } });
  frontPort = (front.address() as { port: number }).port;
  nginx = await startNginx(dir.path, unixLocation(SOCK));
});
afterAll(async () => {
  await nginx?.stop();
  front?.close();
  await app?.close();
  dir.cleanup();
});

/** Send raw HTTP bytes, return the status and body (the connection is closed by us after the response). */
function rawHttp(port: number, text: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let data = '';
    s.on('data', (c) => (data += c.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      const body = data.slice(data.indexOf('\r\n\r\n') + 4);
      resolve({ status: m ? Number(m[1]) : 0, body });
    });
    s.write(text);
  });
}

describe('a NUL in a variable is refused, never a separator', () => {
  it('GET /x%00REMOTE_USER%00admin: 400, the app is not called', async () => {
    const before = seen.length;
    const r = await rawHttp(frontPort, 'GET /x%00REMOTE_USER%00admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(400);
    expect(seen.length).toBe(before);
  });

  it('%00HTTPS%00on in the path: 400', async () => {
    const before = seen.length;
    const r = await rawHttp(frontPort, 'GET /a%00HTTPS%00on HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(400);
    expect(seen.length).toBe(before);
  });

  it('a plain request still goes through', async () => {
    const r = await rawHttp(frontPort, 'GET /ok%20space?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(200);
    const vars = JSON.parse(r.body);
    expect(vars.DOCUMENT_URI).toBe('/ok space');
    expect(vars.REMOTE_USER).toBeUndefined();
  });
});

describe('an absolute-form request target, as nginx handles it', () => {
  const req = 'GET http://evil.com/admin?x=1 HTTP/1.1\r\nHost: good.example\r\nConnection: close\r\n\r\n';

  it('nginx (the reference): the path is the request path, the host comes from the absolute URI', async () => {
    const r = await rawHttp(nginx.port, req);
    expect(r.status).toBe(200);
    const v = JSON.parse(r.body);
    expect(v.REQUEST_URI).toBe('/admin?x=1');
    expect(v.DOCUMENT_URI).toBe('/admin');
    expect(v.QUERY_STRING).toBe('x=1');
    expect(v.HTTP_HOST).toBe('evil.com');
  });

  it('the development front sends the same REQUEST_URI, DOCUMENT_URI, QUERY_STRING and HTTP_HOST', async () => {
    const viaNginx = JSON.parse((await rawHttp(nginx.port, req)).body);
    const r = await rawHttp(frontPort, req);
    expect(r.status).toBe(200);
    const v = JSON.parse(r.body);
    for (const k of ['REQUEST_URI', 'DOCUMENT_URI', 'QUERY_STRING', 'HTTP_HOST', 'REQUEST_METHOD']) expect(v[k], k).toBe(viaNginx[k]);
  });
});
