/**
 * A small HTTP front for development: it does what nginx does for an SCGI
 * app, forwarding each browser request over a real SCGI connection, so the
 * app can be opened in a browser without installing nginx. Loopback by
 * default. Not for production: no TLS, no buffering limits beyond the ones
 * below, no keep-alive to the app (SCGI has none anyway).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connectTo } from './requester.ts';

export interface DevFrontOptions {
  /** SCGI address of the app (same rules as `serve`). */
  app: string;
  /** Where the HTTP front listens, `host:port`. */
  listen: { host: string; port: number };
  /** Largest request body accepted (the front buffers it to know CONTENT_LENGTH, as nginx does). Default 10 MiB. */
  maxBodySize?: number;
}

const NUL = Buffer.from([0]);

function cgiVars(req: IncomingMessage, bodyLength: number, local: AddressInfo): Buffer {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const pairs: [string, string][] = [
    ['CONTENT_LENGTH', String(bodyLength)],
    ['SCGI', '1'],
    ['REQUEST_METHOD', req.method ?? 'GET'],
    ['REQUEST_URI', url],
    ['QUERY_STRING', q === -1 ? '' : url.slice(q + 1)],
    ['DOCUMENT_URI', decodeURIComponentSafe(q === -1 ? url : url.slice(0, q))],
    ['SERVER_PROTOCOL', `HTTP/${req.httpVersion}`],
    ['REQUEST_SCHEME', 'http'],
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', 'scgi-dev-front'],
    ['REMOTE_ADDR', req.socket.remoteAddress ?? ''],
    ['REMOTE_PORT', String(req.socket.remotePort ?? '')],
    ['SERVER_ADDR', local.address],
    ['SERVER_PORT', String(local.port)],
    ['SERVER_NAME', local.address],
  ];
  const ct = req.headers['content-type'];
  if (ct !== undefined) pairs.push(['CONTENT_TYPE', ct]);
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toUpperCase().replace(/-/g, '_');
    if (name === 'CONTENT_LENGTH' || name === 'CONTENT_TYPE' || name === 'TRANSFER_ENCODING' || name === 'CONNECTION') continue;
    pairs.push([`HTTP_${name}`, raw[i + 1]!]);
  }
  const parts: Buffer[] = [];
  for (const [k, v] of pairs) parts.push(Buffer.from(k, 'latin1'), NUL, Buffer.from(v, 'latin1'), NUL);
  const block = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(',')]);
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function fail(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${status} ${STATUS_CODES[status]}: ${message}\n`);
}

async function forward(req: IncomingMessage, res: ServerResponse, opts: DevFrontOptions, local: AddressInfo): Promise<void> {
  // Buffer the body to send a real CONTENT_LENGTH (as nginx does with chunked uploads).
  const chunks: Buffer[] = [];
  let size = 0;
  const limit = opts.maxBodySize ?? 10 * 1024 * 1024;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return fail(res, 413, `request body over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  const socket = connectTo(opts.app);
  let head: Buffer | null = Buffer.alloc(0);
  socket.on('connect', () => {
    socket.cork();
    socket.write(cgiVars(req, size, local));
    for (const c of chunks) socket.write(c);
    socket.uncork();
  });
  socket.on('data', (chunk: Buffer) => {
    if (head === null) {
      if (!res.write(chunk)) socket.pause();
      return;
    }
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf('\r\n\r\n');
    let sep = 4;
    const lf = head.indexOf('\n\n');
    if (lf !== -1 && (end === -1 || lf < end)) {
      end = lf;
      sep = 2;
    }
    if (end === -1) {
      if (head.length > 64 * 1024) {
        socket.destroy();
        fail(res, 502, 'the app sent a response head over 64 KiB');
      }
      return;
    }
    let status = 200;
    let reason: string | undefined;
    const fields: [string, string][] = [];
    for (const line of head.toString('latin1', 0, end).split(/\r?\n/)) {
      const m = /^HTTP\/\d\.\d (\d{3}) ?(.*)$/.exec(line);
      const i = line.indexOf(':');
      if (m) {
        status = Number(m[1]);
        reason = m[2] || undefined;
      } else if (i > 0 && line.slice(0, i).toLowerCase() === 'status') {
        const s = /^\s*(\d{3}) ?(.*)$/.exec(line.slice(i + 1));
        if (s) {
          status = Number(s[1]);
          reason = s[2] || undefined;
        }
      } else if (i > 0) {
        fields.push([line.slice(0, i), line.slice(i + 1).trim()]);
      }
    }
    if (!fields.some(([n]) => n.toLowerCase() === 'status') && status === 200 && fields.some(([n]) => n.toLowerCase() === 'location')) {
      status = 302;
    }
    const rest = head.subarray(end + sep);
    head = null;
    const flat: string[] = [];
    for (const [n, v] of fields) flat.push(n, v);
    res.writeHead(status, reason, flat);
    if (rest.length > 0 && !res.write(rest)) socket.pause();
  });
  res.on('drain', () => socket.resume());
  socket.on('end', () => {
    if (head !== null) fail(res, 502, 'the app closed the connection without a complete response');
    else res.end();
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    const hint =
      err.code === 'EACCES'
        ? 'permission denied on the app socket (socketMode/socketGroup)'
        : err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? `the app is not listening on ${opts.app}`
          : err.message;
    fail(res, 502, hint);
  });
  res.on('close', () => {
    if (!res.writableFinished) socket.destroy();
  });
}

/** Start the development HTTP front. */
export function startDevFront(opts: DevFrontOptions): Promise<Server> {
  const server = createServer((req, res) => {
    forward(req, res, opts, server.address() as AddressInfo).catch((err: Error) => fail(res, 502, err.message));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen.port, opts.listen.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
