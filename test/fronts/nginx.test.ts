// End to end through a real nginx (ngx_http_scgi_module, include scgi_params,
// scgi_pass unix:...), with real HTTP requests from Node's fetch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { serve, type ScgiServer } from '../../src/index.ts';
import { bigBody, tempDir } from '../helpers.ts';
import { startNginx, unixLocation, type Nginx } from './nginx.ts';

const dir = tempDir('scgi-nginx-');
let app: ScgiServer;
let nginx: Nginx;
const seen: [string, string][][] = [];

beforeAll(async () => {
  const sock = join(dir.path, 'app.sock');
  app = await serve(
    async (headers, client) => {
      seen.push([...headers]);
      const uri = headers.get('REQUEST_URI') ?? '/';
      if (uri === '/throw') throw new Error('handler failure');
      if (uri === '/ignore-body') {
        client.writeHead(200, { 'Content-Type': 'text/plain' });
        client.end('did not read it');
        return;
      }
      if (uri === '/missing') {
        client.writeHead(404, 'Not Here', { 'Content-Type': 'text/plain' });
        client.end('nope');
        return;
      }
      if (uri === '/redirect') {
        client.writeHead(302, { Location: '/elsewhere' });
        client.end();
        return;
      }
      const hash = createHash('sha256');
      let length = 0;
      for await (const chunk of client) {
        hash.update(chunk);
        length += chunk.length;
      }
      client.writeHead(200, {
        'Content-Type': 'text/plain',
        'X-Body-Length': String(length),
        'X-Body-Sha256': hash.digest('hex'),
        'Set-Cookie': ['a=1', 'b=2'],
      });
      client.end(`${headers.get('REQUEST_METHOD')} ${uri} cookie=${headers.getAll('HTTP_COOKIE').join('|')}`);
    },
    { address: sock, socketGroup: 'nogroup', handleSignals: false, onError: () => {} },
  );
  nginx = await startNginx(dir.path, unixLocation(sock, 'client_max_body_size 10m;'));
});

afterAll(async () => {
  await nginx?.stop();
  await app?.close();
  dir.cleanup();
});

describe('through nginx', () => {
  it('GET with a query string and cookies', async () => {
    const res = await fetch(`${nginx.url}/page?x=1&y=%20`, { headers: { Cookie: 'c=3' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('GET /page?x=1&y=%20 cookie=c=3');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    const pairs = seen.at(-1)!;
    expect(pairs[0]![0]).toBe('CONTENT_LENGTH');
    expect(Object.fromEntries(pairs)).toMatchObject({ SCGI: '1', QUERY_STRING: 'x=1&y=%20', REQUEST_METHOD: 'GET', SERVER_PROTOCOL: 'HTTP/1.1' });
  });

  it('POST 5 bytes', async () => {
    const res = await fetch(`${nginx.url}/post`, { method: 'POST', body: 'hello' });
    expect(res.headers.get('x-body-length')).toBe('5');
    expect(await res.text()).toBe('POST /post cookie=');
  });

  it('POST 3 MiB arrives byte-exact', async () => {
    const body = bigBody();
    const res = await fetch(`${nginx.url}/upload`, { method: 'POST', body });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-body-length')).toBe(String(body.length));
    expect(res.headers.get('x-body-sha256')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('a handler that ignores a 3 MiB upload: the browser still gets the whole response', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${nginx.url}/ignore-body`, { method: 'POST', body: bigBody() });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('did not read it');
    }
    // (not the test's own HTTP client resetting an idle keepalive connection to nginx, logged at info level)
    const upstreamLog = nginx
      .errorLog()
      .split('\n')
      .filter((line) => !line.includes('closed keepalive connection'));
    expect(upstreamLog.join('\n')).not.toMatch(/reset by peer|prematurely closed/);
  });

  it('duplicate request headers reach the handler as nginx sends them (two pairs)', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      // fetch merges duplicate headers; node:http can send them separately.
      const req = httpRequest(`${nginx.url}/dup`, { headers: ['Host', '127.0.0.1', 'Cookie', 'a=1', 'Cookie', 'b=2'] as never }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      req.end();
    });
    expect(text).toBe('GET /dup cookie=a=1|b=2');
  });

  it('status and reason, redirect', async () => {
    const res = await fetch(`${nginx.url}/missing`);
    expect(res.status).toBe(404);
    expect(res.statusText).toBe('Not Here');
    const r = await fetch(`${nginx.url}/redirect`, { redirect: 'manual' });
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toMatch(/\/elsewhere$/);
  });

  it('a handler that throws: the browser gets 500, the next request is fine', async () => {
    expect((await fetch(`${nginx.url}/throw`)).status).toBe(500);
    expect((await fetch(`${nginx.url}/after`)).status).toBe(200);
  });

  it('HEAD', async () => {
    const res = await fetch(`${nginx.url}/head`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(seen.at(-1)!.find(([k]) => k === 'REQUEST_METHOD')![1]).toBe('HEAD');
  });

  it('many concurrent requests', async () => {
    const all = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`${nginx.url}/c${i}`).then((r) => r.text())));
    for (const [i, t] of all.entries()) expect(t).toBe(`GET /c${i} cookie=`);
  });
});
