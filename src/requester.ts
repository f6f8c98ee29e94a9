/**
 * An SCGI client: send one request to an SCGI server (ours, uWSGI's
 * `--scgi-socket`, Python scgi...) and read its CGI response. Used by the
 * tests, the demo and benchmarks.
 */
import { connect, type Socket } from 'node:net';
import { resolveAddress } from './address.ts';
import { ScgiError } from './errors.ts';

export interface ClientRequest {
  method?: string;
  /** Request URI, with query string. Default '/'. */
  uri?: string;
  /** Extra CGI variables or HTTP headers: `Content-Type` becomes CONTENT_TYPE, `X-Foo` becomes HTTP_X_FOO, UPPER_CASE names go as they are. */
  headers?: Record<string, string> | ReadonlyArray<readonly [string, string]>;
  body?: string | Uint8Array;
  /** ms before giving up. Default 30000. */
  timeout?: number;
}

export interface ClientResponse {
  status: number;
  statusText: string;
  /** Response header fields in order, names as sent. */
  rawHeaders: [string, string][];
  /** Lower-case names; repeated fields joined with ', ' (set-cookie kept as a list in rawHeaders). */
  headers: Record<string, string>;
  body: Buffer;
}

/** Map a header name to its CGI variable name. */
function cgiName(name: string): string {
  if (/^[A-Z0-9_]+$/.test(name)) return name;
  const upper = name.toUpperCase().replace(/-/g, '_');
  return upper === 'CONTENT_TYPE' || upper === 'CONTENT_LENGTH' ? upper : `HTTP_${upper}`;
}

/** Encode a request: the netstring of headers (CONTENT_LENGTH first, SCGI=1), then the body. */
export function encodeRequest(req: ClientRequest = {}): Buffer {
  const body = req.body === undefined ? Buffer.alloc(0) : typeof req.body === 'string' ? Buffer.from(req.body) : Buffer.from(req.body);
  const uri = req.uri ?? '/';
  const q = uri.indexOf('?');
  const pairs: [string, string][] = [
    ['CONTENT_LENGTH', String(body.length)],
    ['SCGI', '1'],
    ['REQUEST_METHOD', req.method ?? (body.length > 0 ? 'POST' : 'GET')],
    ['REQUEST_URI', uri],
    ['QUERY_STRING', q === -1 ? '' : uri.slice(q + 1)],
    ['DOCUMENT_URI', q === -1 ? uri : uri.slice(0, q)],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ];
  const extra = req.headers === undefined ? [] : Array.isArray(req.headers) ? req.headers : Object.entries(req.headers);
  for (const [name, value] of extra as [string, string][]) {
    const n = cgiName(name);
    if (n === 'CONTENT_LENGTH') continue;
    const existing = pairs.findIndex(([k]) => k === n);
    if (existing > 0 && existing < 7) pairs[existing] = [n, value];
    else pairs.push([n, value]);
  }
  const block = Buffer.concat(pairs.flatMap(([k, v]) => [Buffer.from(k, 'latin1'), Buffer.from([0]), Buffer.from(v, 'utf8'), Buffer.from([0])]));
  return Buffer.concat([Buffer.from(`${block.length}:`, 'latin1'), block, Buffer.from(',', 'latin1'), body]);
}

/** Parse a CGI response (`Status: 200 OK`, fields, blank line, body). `HTTP/1.x NNN` first lines are accepted too. */
export function parseResponse(data: Buffer): ClientResponse {
  if (data.length === 0) throw new ScgiError('ERR_SCGI_NO_RESPONSE', 'the server closed the connection without a response');
  let end = data.indexOf('\r\n\r\n');
  let sep = 4;
  const lf = data.indexOf('\n\n');
  if (end === -1 || (lf !== -1 && lf < end)) {
    end = lf;
    sep = 2;
  }
  if (end === -1) throw new ScgiError('ERR_SCGI_BAD_RESPONSE', 'response has no blank line after its header');
  const lines = data.subarray(0, end).toString('latin1').split(/\r?\n/);
  let status = 200;
  let statusText = 'OK';
  const rawHeaders: [string, string][] = [];
  const first = /^HTTP\/\d\.\d (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
  if (first) {
    status = Number(first[1]);
    statusText = first[2]!;
    lines.shift();
  }
  let hadStatus = first !== null;
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) throw new ScgiError('ERR_SCGI_BAD_RESPONSE', `bad response header line ${JSON.stringify(line)}`);
    const name = line.slice(0, i);
    const value = line.slice(i + 1).trim();
    if (name.toLowerCase() === 'status' && !hadStatus) {
      const m = /^(\d{3}) ?(.*)$/.exec(value);
      if (!m) throw new ScgiError('ERR_SCGI_BAD_RESPONSE', `bad Status: ${value}`);
      status = Number(m[1]);
      statusText = m[2]!;
      hadStatus = true;
      continue;
    }
    rawHeaders.push([name, value]);
  }
  if (!hadStatus && rawHeaders.some(([n]) => n.toLowerCase() === 'location')) {
    status = 302;
    statusText = 'Found';
  }
  const headers: Record<string, string> = {};
  for (const [n, v] of rawHeaders) {
    const k = n.toLowerCase();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  return { status, statusText, rawHeaders, headers, body: data.subarray(end + sep) };
}

/** Open a connection to an SCGI address (same rules as `serve`). */
export function connectTo(address: string, port?: number): Socket {
  const a = resolveAddress(address, port);
  if (a.kind === 'unix') return connect({ path: a.path });
  if (a.kind === 'tcp') return connect({ host: a.host, port: a.port });
  return connect(a.listen as never);
}

/** Send one request and read the whole response (until the server closes). */
export function request(address: string, req: ClientRequest = {}): Promise<ClientResponse> {
  const bytes = encodeRequest(req);
  return new Promise((resolve, reject) => {
    const socket = connectTo(address);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy(new ScgiError('ERR_SCGI_REQUEST_TIMEOUT', `no complete response from ${address} within ${req.timeout ?? 30000} ms`));
    }, req.timeout ?? 30_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
      socket.end();
    });
    socket.write(bytes);
  });
}
