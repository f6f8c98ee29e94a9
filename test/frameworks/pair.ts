// One app, two ways, behind one real nginx (issue 21 item 8): on SCGI
// (`scgi_pass` to serve() with an adapter) and on node:http (`proxy_pass`,
// HTTP/1.1 to the upstream as a production config has it). Each request goes
// to both, and the responses are compared: status, headers but Date and ETag
// (and nginx's own Connection/Keep-Alive), body bytes.
import { createServer, request as httpRequest, type RequestListener, type Server } from 'node:http';
import { join } from 'node:path';
import { serve, type Handler, type ScgiServer } from '../../src/index.ts';
import { tempDir } from '../helpers.ts';
import { freePort, startNginx, type Nginx } from '../fronts/nginx.ts';

export interface Answer {
  status: number;
  /** Lower-case names, in order, without the per-response ones (date, etag) and nginx's connection fields. */
  headers: [string, string][];
  body: Buffer;
}

export interface Pair {
  /** The same request to both; [SCGI, node:http]. */
  both(path: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<[Answer, Answer]>;
  stop(): Promise<void>;
}

/** Left out of the comparison: different per response, or nginx's own per connection. */
const VARYING = new Set(['date', 'etag', 'connection', 'keep-alive']);

function ask(port: number, path: string, init: { method?: string; headers?: Record<string, string>; body?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        const headers: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i]!.toLowerCase();
          if (!VARYING.has(name)) headers.push([name, res.rawHeaders[i + 1]!]);
        }
        resolve({ status: res.statusCode!, headers, body: Buffer.concat(chunks) });
      });
      res.once('error', reject);
    });
    req.once('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer to ${path} in 30 s`)));
    req.end(init.body);
  });
}

/** Serve `listener` on node:http and `handler` (the same app through an adapter) on SCGI, both behind one nginx. */
export async function startPair(handler: Handler, listener: RequestListener): Promise<Pair> {
  const dir = tempDir('scgi-framework-');
  const sock = join(dir.path, 'app.sock');
  let app: ScgiServer | null = null;
  let http: Server | null = null;
  let nginx: Nginx | null = null;
  try {
    app = await serve(handler, { address: sock, socketGroup: 'nogroup', handleSignals: false });
    http = createServer(listener);
    await new Promise<void>((r) => http!.listen(0, '127.0.0.1', r));
    const upstream = (http.address() as { port: number }).port;
    const proxyPort = await freePort();
    nginx = await startNginx(
      dir.path,
      `location / {
      include scgi_params;
      scgi_pass unix:${sock};
      client_max_body_size 10m;
    }`,
      `server {
    listen 127.0.0.1:${proxyPort};
    location / {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $host;          # what Debian's scgi_params sends as HTTP_HOST
      client_max_body_size 10m;
    }
  }`,
    );
    const scgiPort = nginx.port;
    const n = nginx;
    const a = app;
    const h = http;
    return {
      both: (path, init = {}) => Promise.all([ask(scgiPort, path, init), ask(proxyPort, path, init)]),
      async stop() {
        await n.stop();
        await a.close();
        h.closeAllConnections();
        await new Promise<void>((r) => h.close(() => r()));
        dir.cleanup();
      },
    };
  } catch (err) {
    await nginx?.stop();
    await app?.close();
    http?.close();
    dir.cleanup();
    throw err;
  }
}

/**
 * The comparison: status, body bytes, and the headers in order but the
 * framing ones. Framing: where node:http sent a Content-Length, SCGI must
 * send the same one; where node:http framed chunked (a listener that
 * writeHead()s before the body), SCGI sends the body close-delimited or, when
 * it knows it, with its true length.
 */
export function compare(scgi: Answer, http: Answer): { scgi: object; http: object } {
  const framing = (a: Answer) => a.headers.filter(([n]) => n === 'content-length' || n === 'transfer-encoding');
  const rest = (a: Answer) => a.headers.filter(([n]) => n !== 'content-length' && n !== 'transfer-encoding');
  const httpLength = framing(http).find(([n]) => n === 'content-length')?.[1];
  const scgiLength = framing(scgi).find(([n]) => n === 'content-length')?.[1];
  const framingOk = httpLength !== undefined ? scgiLength === httpLength : scgiLength === undefined || Number(scgiLength) === scgi.body.length;
  return {
    scgi: { status: scgi.status, headers: rest(scgi), body: scgi.body.toString('latin1'), framing: framingOk ? 'as node:http or better' : framing(scgi) },
    http: { status: http.status, headers: rest(http), body: http.body.toString('latin1'), framing: 'as node:http or better' },
  };
}
