/**
 * The requester, public as `scgi/client`: send one request to an SCGI server
 * (ours, uWSGI's `--scgi-socket`, Python scgi...) and read its CGI response,
 * with the limits a client of an untrusted server needs: a head size limit, a
 * size limit for a buffered body (or a streamed body, `requestStream`), and
 * timeouts for connect, head and body. Used by the CLI (`scgi request`,
 * `scgi bench`), the tests and benchmarks. The bytes on the wire are
 * src/protocol/wire.ts's.
 */
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { resolveAddress } from '../address.ts';
import { cgiVariable } from '../protocol/cgi.ts';
import { ScgiError } from '../errors.ts';
import { checkInt, checkTimeout } from '../options.ts';
import { encodeScgiRequest, parseResponseHead, type CgiVariable, type ResponseHead } from '../protocol/wire.ts';

export { parseResponse } from '../protocol/wire.ts';

export interface ClientRequest {
  method?: string;
  /**
   * Request target, with query string. Default '/'. An absolute URI
   * (`https://example.org:8443/a?b`) also gives the scheme, `SERVER_NAME`,
   * `SERVER_PORT` and `HTTP_HOST`.
   */
  uri?: string;
  /**
   * HTTP headers or CGI variables: `Content-Type` becomes CONTENT_TYPE,
   * `X-Foo` becomes HTTP_X_FOO, UPPER_CASE names go as they are and replace
   * the variable of that name the requester would send (see
   * `requestVariables`).
   */
  headers?: Record<string, string> | ReadonlyArray<readonly [string, string]>;
  body?: string | Uint8Array;
  /** ms for the whole exchange (`request`), or until the response head (`requestStream`). Default 30000; 0 = none. */
  timeout?: number;
  /** ms to connect. Default 10000; 0 = none. */
  connectTimeout?: number;
  /** ms from sending the request to the end of the response head. Default 30000; 0 = none. */
  headersTimeout?: number;
  /** ms without a body byte while the body is being read (an idle timeout). Default 30000; 0 = none. */
  bodyTimeout?: number;
  /** Largest response head in bytes (as the server's `maxHeaderSize`). Default 65536. */
  maxHeaderSize?: number;
  /** Largest body `request()` buffers. Default 16 MiB; use `requestStream` for larger bodies. */
  maxResponseSize?: number;
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

/** `requestStream`'s response: the body is a Readable (with backpressure to the server). */
export interface StreamingResponse extends Omit<ClientResponse, 'body'> {
  body: Readable;
}

const DEFAULTS = {
  timeout: 30_000,
  connectTimeout: 10_000,
  headersTimeout: 30_000,
  bodyTimeout: 30_000,
  maxHeaderSize: 64 * 1024,
  maxResponseSize: 16 * 1024 * 1024,
};

type Limits = Required<Pick<ClientRequest, 'timeout' | 'connectTimeout' | 'headersTimeout' | 'bodyTimeout' | 'maxHeaderSize' | 'maxResponseSize'>>;

function limitsOf(req: ClientRequest): Limits {
  const ms = (k: 'timeout' | 'connectTimeout' | 'headersTimeout' | 'bodyTimeout') => checkTimeout(k, req[k] ?? DEFAULTS[k]);
  return {
    timeout: ms('timeout'),
    connectTimeout: ms('connectTimeout'),
    headersTimeout: ms('headersTimeout'),
    bodyTimeout: ms('bodyTimeout'),
    maxHeaderSize: checkInt('maxHeaderSize', req.maxHeaderSize ?? DEFAULTS.maxHeaderSize, 1, 2 ** 30),
    maxResponseSize: checkInt('maxResponseSize', req.maxResponseSize ?? DEFAULTS.maxResponseSize, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** Map a header name to its CGI variable name. */
function cgiName(name: string): string {
  return /^[A-Z0-9_]+$/.test(name) ? name : cgiVariable(name);
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** `host`, `host:port`, `[v6]:port` → name and port (undefined when absent). */
function splitAuthority(authority: string): { name: string; port: string | undefined } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
  if (!m) return { name: authority, port: undefined };
  return { name: m[1]!, port: m[2] || undefined };
}

/**
 * The CGI variables a request sends: what nginx's `scgi_params` sends
 * (REQUEST_METHOD, REQUEST_URI, QUERY_STRING, CONTENT_TYPE, DOCUMENT_URI,
 * SCGI, SERVER_PROTOCOL, REQUEST_SCHEME, HTTPS, REMOTE_ADDR, REMOTE_PORT,
 * SERVER_PORT, SERVER_NAME, HTTP_HOST; not DOCUMENT_ROOT, a path on the
 * front's disk) plus PATH_INFO and SCRIPT_NAME, which WSGI and other CGI
 * gateways route on. Derived from `uri` (an absolute URI gives the scheme and
 * host), else from a `Host` header, else `localhost:80`. Any of them is
 * replaced by a header of the same name; CONTENT_LENGTH is always the body's.
 */
export function requestVariables(req: ClientRequest = {}, bodyLength = 0): CgiVariable[] {
  let target = req.uri ?? '/';
  let scheme = 'http';
  let authority: string | undefined;
  const abs = /^(https?):\/\/([^/?#]*)([^#]*)/i.exec(target);
  if (abs) {
    scheme = abs[1]!.toLowerCase();
    authority = abs[2]!;
    target = abs[3] || '/';
    if (!target.startsWith('/')) target = `/${target}`;
  }
  const extra: [string, string][] = [];
  const given = req.headers === undefined ? [] : Array.isArray(req.headers) ? req.headers : Object.entries(req.headers);
  for (const [name, value] of given as [string, string][]) extra.push([cgiName(name), String(value)]);
  if (authority === undefined) authority = extra.findLast(([k]) => k === 'HTTP_HOST')?.[1];
  const { name: serverName, port } = splitAuthority(authority ?? 'localhost');
  const q = target.indexOf('?');
  const path = decodePath(q === -1 ? target : target.slice(0, q));
  const vars = new Map<string, string>([
    ['CONTENT_LENGTH', String(bodyLength)],
    ['SCGI', '1'],
    ['REQUEST_METHOD', req.method ?? (bodyLength > 0 ? 'POST' : 'GET')],
    ['REQUEST_URI', target],
    ['QUERY_STRING', q === -1 ? '' : target.slice(q + 1)],
    ['DOCUMENT_URI', path],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', scheme],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REMOTE_PORT', '0'],
    ['SERVER_PORT', port ?? (scheme === 'https' ? '443' : '80')],
    ['SERVER_NAME', serverName || 'localhost'],
    ['SCRIPT_NAME', ''],
    ['PATH_INFO', path],
    ['HTTP_HOST', authority || 'localhost'],
  ]);
  if (scheme === 'https') vars.set('HTTPS', 'on');
  const rest: CgiVariable[] = [];
  let schemeGiven = false;
  for (const [k, v] of extra) {
    if (k === 'CONTENT_LENGTH') continue;
    if (k === 'REQUEST_SCHEME') schemeGiven = true;
    if (vars.has(k) || k === 'HTTPS') vars.set(k, v);
    else rest.push([k, v]);
  }
  // HTTPS=on given alone (as a front behind TLS sends it) means the https scheme.
  if (!schemeGiven && /^(on|1)$/i.test(vars.get('HTTPS') ?? '')) vars.set('REQUEST_SCHEME', 'https');
  return [...vars, ...rest];
}

function bodyBytes(body: ClientRequest['body']): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  return typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/**
 * Encode a request: the netstring of CGI variables (`requestVariables`), then
 * the body. Throws `ERR_SCGI_INVALID_VARIABLE` for a NUL in a name or value
 * (a `%00` in the path decodes to one) or an empty name.
 */
export function encodeRequest(req: ClientRequest = {}): Buffer {
  const body = bodyBytes(req.body);
  return encodeScgiRequest(requestVariables(req, body.length), body);
}

/** Open a connection to an SCGI address (same rules as `serve`). */
export function connectTo(address: string, port?: number): Socket {
  const a = resolveAddress(address, port);
  if (a.kind === 'unix') return connect({ path: a.path });
  if (a.kind === 'tcp') return connect({ host: a.host, port: a.port });
  return connect(a.listen as never);
}

function timeoutError(what: string, option: string, ms: number, address: string): ScgiError {
  return new ScgiError('ERR_SCGI_RESPONSE_TIMEOUT', `${what} from ${address} within ${option} (${ms} ms)`);
}

/**
 * One exchange: connect, send, read the head within the limits, then hand the
 * socket to `onHead` for the body. Every timer here belongs to this one
 * request and is cleared when it settles.
 */
function exchange<T>(
  address: string,
  req: ClientRequest,
  onHead: (head: ResponseHead, rest: Buffer, socket: Socket, limits: Limits, settle: (err: Error | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const limits = limitsOf(req);
    const bytes = encodeRequest(req);
    const socket = connectTo(address);
    let settled = false;
    let head: Buffer[] = [];
    let headSize = 0;
    let inHead = true;
    const timers: NodeJS.Timeout[] = [];
    const after = (ms: number, err: () => ScgiError): NodeJS.Timeout | null => {
      if (ms === 0) return null;
      const t = setTimeout(() => fail(err()), ms);
      timers.push(t);
      return t;
    };
    const clear = (t: NodeJS.Timeout | null) => t !== null && clearTimeout(t);
    const settle = (err: Error | null, value?: T) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      if (err !== null) {
        socket.destroy();
        reject(err);
      } else resolve(value as T);
    };
    const fail = (err: Error) => {
      if (!settled) settle(err);
      else socket.destroy(err);
    };
    after(limits.timeout, () => timeoutError('no complete response', 'timeout', limits.timeout, address));
    const connectTimer = after(limits.connectTimeout, () => timeoutError('no connection', 'connectTimeout', limits.connectTimeout, address));
    let headTimer: NodeJS.Timeout | null = null;
    socket.once('connect', () => {
      clear(connectTimer);
      headTimer = after(limits.headersTimeout, () => timeoutError('no complete response head', 'headersTimeout', limits.headersTimeout, address));
      socket.write(bytes);
    });
    const onData = (chunk: Buffer) => {
      head.push(chunk);
      headSize += chunk.length;
      const buf = head.length === 1 ? chunk : Buffer.concat(head, headSize);
      let parsed: ResponseHead | null;
      try {
        parsed = parseResponseHead(buf, limits.maxHeaderSize);
      } catch (err) {
        return fail(err as Error);
      }
      if (parsed === null) {
        head = [buf];
        return;
      }
      inHead = false;
      head = [];
      clear(headTimer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      onHead(parsed, buf.subarray(parsed.bodyStart), socket, limits, settle);
    };
    const onEnd = () => {
      if (!inHead) return;
      fail(
        headSize === 0
          ? new ScgiError('ERR_SCGI_NO_RESPONSE', `empty response: ${address} closed the connection without sending a byte`)
          : new ScgiError('ERR_SCGI_BAD_RESPONSE', `${address} closed the connection before the blank line after the response head`),
      );
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', (err) => fail(err));
  });
}

/**
 * Send one request and read the whole response (until the server closes),
 * buffering at most `maxResponseSize` body bytes.
 */
export function request(address: string, req: ClientRequest = {}): Promise<ClientResponse> {
  return exchange<ClientResponse>(address, req, (head, rest, socket, limits, settle) => {
    const { bodyStart: _, ...fields } = head;
    const chunks: Buffer[] = [];
    let size = 0;
    let idle: NodeJS.Timeout | null = null;
    if (limits.bodyTimeout > 0) {
      idle = setTimeout(() => settle(timeoutError('the response body stopped', 'bodyTimeout', limits.bodyTimeout, address)), limits.bodyTimeout);
    }
    const take = (chunk: Buffer): boolean => {
      size += chunk.length;
      if (size > limits.maxResponseSize) {
        if (idle !== null) clearTimeout(idle);
        settle(
          new ScgiError(
            'ERR_SCGI_RESPONSE_TOO_LARGE',
            `the response body from ${address} is over maxResponseSize (${limits.maxResponseSize} bytes): use requestStream() for large bodies`,
          ),
        );
        return false;
      }
      if (chunk.length > 0) chunks.push(chunk);
      idle?.refresh();
      return true;
    };
    if (!take(rest)) return;
    socket.on('data', take);
    socket.once('end', () => {
      if (idle !== null) clearTimeout(idle);
      settle(null, { ...fields, body: Buffer.concat(chunks, size) });
      socket.end();
    });
    socket.once('close', () => {
      if (idle !== null) clearTimeout(idle);
    });
  });
}

/**
 * Send one request and resolve at its response head; `body` streams the rest
 * with backpressure (the server is held back while nobody reads). The body
 * stream errors with `ERR_SCGI_RESPONSE_TIMEOUT` after `bodyTimeout` ms
 * without a byte while it is being read.
 */
export function requestStream(address: string, req: ClientRequest = {}): Promise<StreamingResponse> {
  return exchange<StreamingResponse>(address, req, (head, rest, socket, limits, settle) => {
    const { bodyStart: _, ...fields } = head;
    let idle: NodeJS.Timeout | null = null;
    const stopIdle = () => {
      if (idle !== null) clearTimeout(idle);
      idle = null;
    };
    const startIdle = () => {
      if (limits.bodyTimeout === 0 || body.destroyed || body.readableEnded) return;
      if (idle !== null) return void idle.refresh();
      idle = setTimeout(() => body.destroy(timeoutError('the response body stopped', 'bodyTimeout', limits.bodyTimeout, address)), limits.bodyTimeout);
    };
    const body = new Readable({
      read() {
        if (socket.isPaused()) socket.resume();
        startIdle();
      },
      destroy(err, cb) {
        stopIdle();
        socket.destroy();
        cb(err);
      },
    });
    const onData = (chunk: Buffer) => {
      if (!body.push(chunk)) {
        // nobody is reading: no idle timeout while we wait for them
        stopIdle();
        socket.pause();
      } else startIdle();
    };
    let ended = false;
    socket.pause();
    if (rest.length > 0) body.push(rest);
    socket.on('data', onData);
    socket.once('end', () => {
      ended = true;
      stopIdle();
      body.push(null);
      socket.end();
    });
    socket.on('error', (err) => body.destroy(err));
    socket.once('close', () => {
      stopIdle();
      if (!ended && !body.destroyed) body.destroy(new ScgiError('ERR_SCGI_BAD_RESPONSE', `${address} closed the connection`));
    });
    settle(null, { ...fields, body });
  });
}
