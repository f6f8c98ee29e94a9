// scgi/http lifecycle as node:http has it (issue 12 item 3): `req` and `res`
// emit 'close' after a normal response and when the browser goes away,
// through a real nginx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import { serve, inject, type Handler, type ScgiServer } from '../src/index.ts';
import { fromNodeListener } from '../src/adapters/http.ts';
import { tempDir, waitFor } from './helpers.ts';
import { startNginx, unixLocation, type Nginx } from './fronts/nginx.ts';

type Events = string[];

describe('scgi/http: close events', () => {
  it("a normal response: req and res emit 'close' (GET without reading, POST with reading)", async () => {
    for (const [method, body, read] of [
      ['GET', undefined, false],
      ['POST', 'abc', true],
      ['POST', 'abcdef', false],
    ] as const) {
      const events: Events = [];
      const handler = fromNodeListener((req, res) => {
        req.on('close', () => events.push('req close'));
        res.on('close', () => events.push('res close'));
        res.on('finish', () => events.push('res finish'));
        if (read) req.resume();
        res.end('ok');
      });
      const r = await inject(handler, { method, body });
      expect(r.body.toString()).toBe('ok');
      await waitFor(() => events.includes('req close') && events.includes('res close'), 2000).catch(() => {});
      expect(events, `${method} read=${read}`).toEqual(expect.arrayContaining(['res finish', 'req close', 'res close']));
    }
  });

  it('a whole response given to res.end() reaches the client in its end(), in one piece (no write, no second write)', async () => {
    const calls: string[] = [];
    const inner = fromNodeListener((_req, res) => {
      res.setHeader('X-A', '1');
      res.end('whole');
    });
    const handler: Handler = (headers, client) => {
      const write = client.write.bind(client);
      const end = client.end.bind(client);
      client.write = ((...a: Parameters<typeof write>) => {
        calls.push('write');
        return write(...a);
      }) as typeof client.write;
      client.end = ((...a: unknown[]) => {
        calls.push(a[0] == null ? 'end()' : 'end(data)');
        return (end as (...x: unknown[]) => typeof client)(...a);
      }) as typeof client.end;
      return inner(headers, client);
    };
    const r = await inject(handler, { uri: '/' });
    expect(r.body.toString()).toBe('whole');
    expect(r.headers['x-a']).toBe('1');
    expect(calls[0]).toBe('end(data)');
    expect(calls).not.toContain('write');
  });

  it('the head Node formats becomes a CGI head byte for byte, whatever the encoding of the body written with it', async () => {
    // Node writes its head and a utf8/latin1 string body as one string in the
    // body's encoding (so a latin1 header value goes out in utf8 with a utf8
    // body, as on a real socket); other encodings get a latin1 head of their own.
    const cases: { body: string; encoding: BufferEncoding; expected: Buffer }[] = [
      {
        body: 'h\u00e9llo \u20ac',
        encoding: 'utf8',
        expected: Buffer.from('Status: 201 Cr\u00e9\u00e9\r\nX-Name: caf\u00e9\r\nContent-Length: 10\r\n\r\nh\u00e9llo \u20ac', 'utf8'),
      },
      {
        body: 'caf\u00e9',
        encoding: 'latin1',
        expected: Buffer.from('Status: 201 Cr\u00e9\u00e9\r\nX-Name: caf\u00e9\r\nContent-Length: 4\r\n\r\ncaf\u00e9', 'latin1'),
      },
      {
        body: 'cafe',
        encoding: 'hex',
        expected: Buffer.concat([
          Buffer.from('Status: 201 Cr\u00e9\u00e9\r\nX-Name: caf\u00e9\r\nContent-Length: 2\r\n\r\n', 'latin1'),
          Buffer.from([0xca, 0xfe]),
        ]),
      },
    ];
    for (const { body, encoding, expected } of cases) {
      const sent: Buffer[] = [];
      const inner = fromNodeListener((_req, res) => {
        res.sendDate = false;
        res.statusCode = 201;
        res.statusMessage = 'Cr\u00e9\u00e9';
        res.setHeader('X-Name', 'caf\u00e9');
        res.setHeader('Keep-Alive', 'timeout=5');
        res.end(body, encoding);
      });
      const handler: Handler = (headers, client) => {
        const write = client.write.bind(client);
        const end = client.end.bind(client);
        client.write = ((data: Buffer, ...a: unknown[]) => {
          sent.push(Buffer.from(data));
          return (write as (...x: unknown[]) => boolean)(data, ...a);
        }) as typeof client.write;
        client.end = ((data?: unknown, ...a: unknown[]) => {
          if (Buffer.isBuffer(data)) sent.push(Buffer.from(data));
          return (end as (...x: unknown[]) => typeof client)(data, ...a);
        }) as typeof client.end;
        return inner(headers, client);
      };
      const r = await inject(handler, { uri: '/' });
      expect(r.status, encoding).toBe(201);
      expect(Buffer.concat(sent).toString('latin1'), encoding).toBe(expected.toString('latin1'));
    }
  });

  describe('through nginx', () => {
    const dir = tempDir('scgi-http-');
    let nginx: Nginx;
    let server: ScgiServer;
    const log: Record<string, Events> = {};
    beforeAll(async () => {
      const app = express();
      app.get('/sse/:id', (req, res) => {
        const events: Events = (log[req.params.id] = []);
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.write('data: hello\n\n');
        const t = setInterval(() => {
          events.push('tick');
          res.write('data: tick\n\n');
        }, 20);
        req.on('close', () => {
          events.push('req close');
          clearInterval(t);
        });
        res.on('close', () => events.push('res close'));
      });
      app.get('/plain/:id', (req, res) => {
        const events: Events = (log[req.params.id] = []);
        req.on('close', () => events.push('req close'));
        res.on('close', () => events.push('res close'));
        res.send('plain');
      });
      const sock = join(dir.path, 'http.sock');
      server = await serve(fromNodeListener(app), { address: sock, handleSignals: false, socketGroup: 'nogroup', onError: () => {} });
      chmodSync(dir.path, 0o711);
      mkdirSync(join(dir.path, 'n'));
      nginx = await startNginx(join(dir.path, 'n'), unixLocation(sock, 'scgi_buffering off;'));
    });
    afterAll(async () => {
      await nginx?.stop();
      await server?.close();
      dir.cleanup();
    });

    it("after a normal response, req emits 'close'", async () => {
      const r = await fetch(`${nginx.url}/plain/a`);
      expect(await r.text()).toBe('plain');
      await waitFor(() => log.a?.includes('req close') === true && log.a.includes('res close'), 3000).catch(() => {});
      expect(log.a).toEqual(expect.arrayContaining(['req close', 'res close']));
    });

    it("when the browser goes away, req emits 'close' and the SSE timer stops", async () => {
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${nginx.url}/sse/b`, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => resolve());
        req.end();
      });
      await waitFor(() => log.b?.includes('req close') === true, 5000).catch(() => {});
      expect(log.b).toContain('req close');
      expect(log.b).toContain('res close');
      const ticks = log.b!.filter((e) => e === 'tick').length;
      await new Promise((r) => setTimeout(r, 200));
      expect(log.b!.filter((e) => e === 'tick').length).toBe(ticks);
    });
  });
});
