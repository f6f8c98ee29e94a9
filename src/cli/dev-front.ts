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
import { cgiVariable } from '../protocol/cgi.ts';
import { ScgiError } from '../errors.ts';
import { connectTo } from '../client/request.ts';
import { encodeScgiRequest, parseResponseHead, type CgiVariable, type ResponseHead } from '../protocol/wire.ts';

export interface DevFrontOptions {
  /** SCGI address of the app (same rules as `serve`). */
  app: string;
  /** Where the HTTP front listens, `host:port`. */
  listen: { host: string; port: number };
  /** Largest request body accepted (the front buffers it to know CONTENT_LENGTH, as nginx does). Default 10 MiB. */
  maxBodySize?: number;
}

/**
 * The request target as nginx reads it: origin-form `/path?query` as it is;
 * absolute-form `http://host[:port]/path?query` gives the path (and query)
 * and the host, which replaces the Host header (nginx's `$host`). Anything
 * else is not a request we forward (null: 400).
 */
function splitTarget(url: string): { target: string; host: string | null } | null {
  if (url.startsWith('/')) return { target: url, host: null };
  const abs = /^https?:\/\/([^/?#]+)([^#]*)/i.exec(url);
  if (abs === null) return null;
  let target = abs[2]!;
  if (!target.startsWith('/')) target = `/${target}`;
  return { target, host: abs[1]!.toLowerCase() };
}

/** The CGI variables for a request, as nginx's scgi_params sends them. Null: not a request target we forward. */
function cgiVars(req: IncomingMessage, bodyLength: number, local: AddressInfo): CgiVariable[] | null {
  const split = splitTarget(req.url ?? '/');
  if (split === null) return null;
  const { target, host } = split;
  const q = target.indexOf('?');
  const pairs: [string, string][] = [
    ['CONTENT_LENGTH', String(bodyLength)],
    ['SCGI', '1'],
    ['REQUEST_METHOD', req.method ?? 'GET'],
    ['REQUEST_URI', target],
    ['QUERY_STRING', q === -1 ? '' : target.slice(q + 1)],
    ['DOCUMENT_URI', decodeURIComponentSafe(q === -1 ? target : target.slice(0, q))],
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
  if (host !== null) pairs.push(['HTTP_HOST', host]);
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = cgiVariable(raw[i]!);
    if (name === 'CONTENT_LENGTH' || name === 'CONTENT_TYPE' || name === 'HTTP_TRANSFER_ENCODING' || name === 'HTTP_CONNECTION') continue;
    if (name === 'HTTP_HOST' && host !== null) continue;
    pairs.push([name, raw[i + 1]!]);
  }
  return pairs;
}

/** Largest response head the front reads from the app. */
const MAX_RESPONSE_HEAD = 64 * 1024;

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
  // Node's http decodes header bytes as latin1: latin1 sends the same bytes on.
  const vars = cgiVars(req, size, local);
  if (vars === null) return fail(res, 400, 'the request target is neither /path nor http://host/path');
  let request: Buffer;
  try {
    request = encodeScgiRequest(vars, Buffer.concat(chunks, size), 'latin1');
  } catch (err) {
    // A NUL (%00 in the path) would end the variable and start a forged one.
    if (err instanceof ScgiError && err.code === 'ERR_SCGI_INVALID_VARIABLE') return fail(res, 400, err.message);
    throw err;
  }
  const socket = connectTo(opts.app);
  let head: Buffer | null = Buffer.alloc(0);
  socket.on('connect', () => socket.write(request));
  socket.on('data', (chunk: Buffer) => {
    if (head === null) {
      if (!res.write(chunk)) socket.pause();
      return;
    }
    head = Buffer.concat([head, chunk]);
    let parsed: ResponseHead | null;
    try {
      parsed = parseResponseHead(head, MAX_RESPONSE_HEAD);
    } catch (err) {
      socket.destroy();
      return fail(res, 502, `the app sent a bad response head: ${(err as Error).message}`);
    }
    if (parsed === null) return;
    const status = parsed.status;
    const reason = parsed.statusText || undefined;
    const fields = parsed.rawHeaders;
    const rest = head.subarray(parsed.bodyStart);
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
