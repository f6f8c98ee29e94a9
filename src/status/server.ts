/**
 * The status endpoint (`statusAddress`, `scgi serve --status`): a small
 * `node:http` server on a unix socket (created mode 0600, with the SCGI
 * socket's group) or a TCP address (loopback unless the address names
 * another host), answering
 *
 * - `GET /status`: the status document as JSON (src/status/document.ts);
 * - `GET /metrics`: the same in the Prometheus text format, or OpenMetrics
 *   when the Accept header asks for it (src/status/metrics.ts).
 *
 * It runs in the process that called `serve` (in process at parallelism 1;
 * the cluster primary otherwise, whose loop no request runs on) and closes
 * with the SCGI server (its `'close'`).
 */
import type { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ListenOptions } from 'node:net';
import { formatAddress, resolveAddress } from '../address.ts';
import { listenError, ScgiError } from '../errors.ts';
import type { NormalizedOptions } from '../options.ts';
import { UnixSocketFile } from '../server/unix-socket.ts';
import { documentOf, inProcessDocument, setDocumentSource, type InProcessSource, type StatusDocument } from './document.ts';
import { OPENMETRICS_TYPE, PROMETHEUS_TYPE, renderMetrics, wantsOpenMetrics } from './metrics.ts';

/** Where the status endpoint listens: a unix path, or host and port (a bare port or `:port`: 127.0.0.1). */
export function statusListenOptions(address: string): { kind: 'unix'; path: string } | { kind: 'tcp'; listen: ListenOptions } {
  const a = address.trim();
  const port = /^:?(\d+)$/.exec(a);
  if (port !== null) return { kind: 'tcp', listen: { host: '127.0.0.1', port: Number(port[1]) } };
  let r: ReturnType<typeof resolveAddress>;
  try {
    r = resolveAddress(a);
  } catch (err) {
    throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `statusAddress: ${(err as Error).message}`, { cause: err });
  }
  if (r.kind === 'unix') return { kind: 'unix', path: r.path };
  if (r.kind === 'tcp') {
    if (!/:\d+$/.test(a)) throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `statusAddress ${JSON.stringify(a)} needs a port, e.g. 127.0.0.1:9101`);
    return { kind: 'tcp', listen: { host: r.host, port: r.port } };
  }
  throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', 'statusAddress must be a unix socket path or host:port');
}

function answer(doc: () => StatusDocument, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/status' && path !== '/metrics') {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: GET /status (JSON) or /metrics (Prometheus)\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
    return;
  }
  let body: string;
  let type: string;
  try {
    const d = doc();
    if (path === '/status') {
      body = `${JSON.stringify(d, null, 2)}\n`;
      type = 'application/json; charset=utf-8';
    } else {
      const open = wantsOpenMetrics(req.headers.accept);
      body = renderMetrics(d, open);
      type = open ? OPENMETRICS_TYPE : PROMETHEUS_TYPE;
    }
  } catch (err) {
    res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`status failed: ${(err as Error).message}\n`);
    return;
  }
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** A listening status endpoint. */
export interface StatusEndpoint {
  readonly server: Server;
  /** Where it listens, as `scgi status` takes it. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * The endpoint of `owner` (a server `serve()` made) at `opts.statusAddress`,
 * answering with `doc()`, closed with it; if it cannot listen, `owner` is
 * closed too and this rejects (as `serve()` then does).
 */
export async function serveStatus(
  owner: EventEmitter & { close(): Promise<void> },
  opts: NormalizedOptions,
  doc: () => StatusDocument,
): Promise<StatusEndpoint> {
  setDocumentSource(owner, doc);
  try {
    return await listenStatus(opts.statusAddress!, opts.socketGroup, doc, owner);
  } catch (err) {
    await owner.close();
    throw err;
  }
}

/**
 * Listen on `address` and answer with `doc()`; closes when `owner` emits
 * `'close'`. Rejects with `ERR_SCGI_ADDRESS_IN_USE`, `ERR_SCGI_INVALID_ADDRESS`, ...
 */
export async function listenStatus(address: string, group: number | undefined, doc: () => StatusDocument, owner: EventEmitter): Promise<StatusEndpoint> {
  const where = statusListenOptions(address);
  const http = createServer((req, res) => answer(doc, req, res));
  http.on('clientError', (_err, socket) => socket.destroy());
  let file: UnixSocketFile | null = null;
  // `bound` runs right after listen() (which binds synchronously), before any other code runs under a narrowed umask.
  const listen = (opts: ListenOptions, what: string, bound: () => void = () => {}) =>
    new Promise<void>((resolve, reject) => {
      http.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, what)));
      http.listen(opts, () => resolve());
      bound();
    });
  if (where.kind === 'unix') {
    file = new UnixSocketFile(where.path, 0o600, group);
    await file.prepare(false);
    if (UnixSocketFile.bindsAside) {
      // A worker thread may not set the umask: bound at a private path, then linked into place.
      await file
        .bindAside((tmp) => listen({ path: tmp }, where.path))
        .catch((err) => {
          http.close();
          throw err;
        });
    } else {
      const bound = file.narrowUmask();
      try {
        await listen({ path: where.path }, where.path, bound);
      } finally {
        bound();
      }
    }
    file.claim();
  } else {
    await listen(where.listen, `${where.listen.host}:${where.listen.port}`);
  }
  const a = http.address();
  const shown = where.kind === 'unix' ? where.path : a !== null && typeof a === 'object' ? formatAddress(a).replace(/^unix:/, '') : address;
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      http.close(() => {
        file?.release();
        resolve();
      });
      http.closeAllConnections();
    }));
  owner.once('close', () => void close());
  return { server: http, address: shown, close };
}

/** The in-process server's endpoint (parallelism 1): `serve()` calls this when `statusAddress` is set. */
export async function startStatusServer(server: InProcessSource & EventEmitter & { close(): Promise<void> }, opts: NormalizedOptions): Promise<StatusEndpoint> {
  return serveStatus(server, opts, documentOf(server) ?? inProcessDocument(server));
}
