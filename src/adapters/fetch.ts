/**
 * `scgi/fetch`: run a WHATWG fetch handler, `(request: Request) => Response`,
 * as Hono, itty-router and similar export, over SCGI.
 *
 * The cost model follows `@hono/node-server`: nothing the app does not touch
 * is built.
 * - The `Request` is lazy: an object whose prototype chain reaches
 *   `Request.prototype` (so `instanceof Request` holds) with `method` and `url`
 *   as plain strings; `headers` (a `Headers`), `signal` (an `AbortSignal` that
 *   aborts when the front disconnects) and the real `Request` (with a body
 *   stream over the SCGI body) are made on first use. `text()`, `json()`,
 *   `arrayBuffer()`, `bytes()` and `blob()` read the SCGI body straight into
 *   a buffer.
 * - The `Response`: by default `fromFetch` replaces `globalThis.Response` with
 *   a subclass that keeps a string or bytes body as it is (no ReadableStream
 *   made per response; `instanceof Response` still holds for both kinds), as
 *   `@hono/node-server` does; pass `{ overrideGlobalObjects: false }` to keep
 *   the global. A body complete at once (string, bytes, or a platform
 *   Response's string/bytes source) goes out in one write with its
 *   Content-Length; a stream is written with backpressure.
 *
 * The URL's path and query are always the request's own (REQUEST_URI, see
 * src/protocol/cgi.ts `requestTarget`); the Host header is used for the authority only
 * when it is a host[:port]. Headers that `Headers` cannot hold are dropped
 * (names that are not tokens) or kept as their bytes (values beyond latin1,
 * with `headerEncoding: 'utf8'`); a method that is not a token or a target
 * that is not a path gets a 400 without calling the app.
 */
import { httpHeaders, requestTarget } from '../protocol/cgi.ts';
import type { Handler, ScgiClient } from '../connection/scgi-client.ts';
import { ScgiError } from '../errors.ts';
import type { ScgiHeaders } from '../protocol/scgi-headers.ts';
import { checkName, checkValue } from '../protocol/response.ts';
import { STATUS_CODES } from 'node:http';

/** What a fetch handler may get as a second argument (Hono's `env`, `c.env`). */
export interface FetchContext {
  headers: ScgiHeaders;
  client: ScgiClient;
}

type BodyInit = ConstructorParameters<typeof Response>[0];
type HeadersInit = ConstructorParameters<typeof Headers>[0];
type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

export type FetchHandler = (request: Request, context: FetchContext) => Response | Promise<Response>;

export interface FromFetchOptions {
  /**
   * Replace `globalThis.Response` with a subclass that keeps string and bytes
   * bodies without making a stream (default true, as `@hono/node-server`).
   */
  overrideGlobalObjects?: boolean;
}

// ---------------------------------------------------------------------------
// The request body

/** The body as a byte stream that pulls from the client (backpressure by pausing it). */
function bodyStream(client: ScgiClient): ReadableStream<Uint8Array> {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let done = false;
  const cleanup = () => {
    done = true;
    client.off('data', onData);
    client.off('end', onEnd);
    client.off('error', onError);
    client.off('close', onClose);
  };
  const onData = (chunk: Buffer) => {
    controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if ((controller.desiredSize ?? 0) <= 0) client.pause();
  };
  const onEnd = () => {
    cleanup();
    controller.close();
  };
  const onError = (err: Error) => {
    cleanup();
    controller.error(err);
  };
  const onClose = () => {
    if (done) return;
    cleanup();
    controller.error(new ScgiError('ERR_SCGI_BODY_TRUNCATED', 'the front closed the connection before the body was read'));
  };
  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        client.on('data', onData);
        client.pause();
        client.once('end', onEnd);
        client.once('error', onError);
        client.once('close', onClose);
      },
      pull() {
        client.resume();
      },
      cancel() {
        cleanup();
        // The connection discards what is left of the body once the response ends.
      },
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
}

/** The whole body, read straight from the client. */
function readBody(client: ScgiClient): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const cleanup = () => {
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('error', onError);
      client.off('close', onClose);
    };
    const onData = (chunk: Buffer) => chunks.push(chunk);
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new ScgiError('ERR_SCGI_BODY_TRUNCATED', 'the front closed the connection before the body was read'));
    };
    if (client.readableEnded) return resolve(Buffer.alloc(0));
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('error', onError);
    client.once('close', onClose);
  });
}

// ---------------------------------------------------------------------------
// The lazy Request

const kReq = Symbol('scgi.fetch.request');

interface RequestState {
  headers: ScgiHeaders;
  client: ScgiClient;
  method: string;
  url: string;
  h: Headers | null;
  real: Request | null;
  ac: AbortController | null;
  /** The body was read directly (text(), json(), ...). */
  used: boolean;
  /** The response is complete: a close after it is not an abort. */
  done: boolean;
}

type LazyRequest = Request & { [kReq]: RequestState };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NOT_LATIN1_OR_CTL = /[^\t\x20-\x7e\x80-\xff]/;
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

/** The request headers as `Headers`, without what `Headers` cannot hold. */
function buildHeaders(scgi: ScgiHeaders): Headers {
  const raw = httpHeaders(scgi).rawHeaders;
  const h = new Headers();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    let value = raw[i + 1]!;
    if (!TOKEN.test(name)) continue; // HTTP_, HTTP_X Y, bytes >= 0x80: not a header name
    if (NOT_LATIN1_OR_CTL.test(value)) {
      // headerEncoding utf8 decoded it beyond latin1: keep the bytes, as a
      // ByteString (what a fetch client sees for the same header).
      value = Buffer.from(value, 'utf8').toString('latin1');
      if (/[\0\r\n]/.test(value)) continue;
    }
    h.append(name, value);
  }
  return h;
}

function getHeaders(s: RequestState): Headers {
  return (s.h ??= buildHeaders(s.headers));
}

function getAbortController(s: RequestState): AbortController {
  if (s.ac === null) {
    const ac = new AbortController();
    s.ac = ac;
    const abort = () => ac.abort(new ScgiError('ERR_SCGI_BODY_TRUNCATED', 'the front closed the connection'));
    if (s.client.destroyed && !s.done) abort();
    else
      s.client.once('close', () => {
        if (!s.done && !s.client.writableFinished) abort();
      });
  }
  return s.ac;
}

function getReal(s: RequestState): Request {
  if (s.real !== null) return s.real;
  const m = s.method;
  // fetch refuses CONNECT, TRACE and TRACK: the real Request says GET, the
  // lazy one keeps the method (as `@hono/node-server` does for TRACE).
  const forbidden = FORBIDDEN_METHODS.has(m.toUpperCase());
  const init: RequestInit & { duplex?: 'half' } = { method: forbidden ? 'GET' : m, headers: getHeaders(s), signal: getAbortController(s).signal };
  if (!forbidden && m !== 'GET' && m !== 'HEAD') {
    if (s.used) init.body = new Uint8Array(0);
    else {
      init.body = bodyStream(s.client);
      init.duplex = 'half';
    }
  }
  return (s.real = new Request(s.url, init));
}

function bodyUnusable(): Promise<never> {
  return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
}

/** The body bytes without a Request, when nothing else has read it. */
function directBody(s: RequestState): Promise<Buffer> | null {
  if (s.real !== null) return null;
  if (s.method === 'GET' || s.method === 'HEAD') return Promise.resolve(Buffer.alloc(0));
  if (s.used) return bodyUnusable();
  s.used = true;
  return readBody(s.client);
}

const requestProto: object = Object.create(Request.prototype);
const own = new Set(['constructor', 'method', 'url', 'headers', 'signal', 'bodyUsed', 'text', 'json', 'arrayBuffer', 'bytes', 'blob']);
for (const key of Object.getOwnPropertyNames(Request.prototype)) {
  if (own.has(key)) continue;
  const d = Object.getOwnPropertyDescriptor(Request.prototype, key)!;
  if (d.get !== undefined) {
    Object.defineProperty(requestProto, key, {
      get(this: LazyRequest) {
        return (getReal(this[kReq]) as unknown as Record<string, unknown>)[key];
      },
      configurable: true,
    });
  } else if (typeof d.value === 'function') {
    Object.defineProperty(requestProto, key, {
      value(this: LazyRequest, ...args: unknown[]) {
        const real = getReal(this[kReq]) as unknown as Record<string, (...a: unknown[]) => unknown>;
        return real[key]!(...args);
      },
      configurable: true,
      writable: true,
    });
  }
}
const textDecoder = new TextDecoder();
Object.defineProperties(requestProto, {
  method: {
    get(this: LazyRequest) {
      return this[kReq].method;
    },
    configurable: true,
  },
  url: {
    get(this: LazyRequest) {
      return this[kReq].url;
    },
    configurable: true,
  },
  headers: {
    get(this: LazyRequest) {
      return getHeaders(this[kReq]);
    },
    configurable: true,
  },
  signal: {
    get(this: LazyRequest) {
      return getAbortController(this[kReq]).signal;
    },
    configurable: true,
  },
  bodyUsed: {
    get(this: LazyRequest) {
      const s = this[kReq];
      return s.used || (s.real?.bodyUsed ?? false);
    },
    configurable: true,
  },
  text: {
    value(this: LazyRequest) {
      return directBody(this[kReq])?.then((b) => textDecoder.decode(b)) ?? getReal(this[kReq]).text();
    },
    configurable: true,
    writable: true,
  },
  json: {
    value(this: LazyRequest) {
      return directBody(this[kReq])?.then((b) => JSON.parse(textDecoder.decode(b)) as unknown) ?? getReal(this[kReq]).json();
    },
    configurable: true,
    writable: true,
  },
  arrayBuffer: {
    value(this: LazyRequest) {
      return directBody(this[kReq])?.then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) ?? getReal(this[kReq]).arrayBuffer();
    },
    configurable: true,
    writable: true,
  },
  bytes: {
    value(this: LazyRequest) {
      return (
        directBody(this[kReq])?.then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) ??
        (getReal(this[kReq]) as unknown as { bytes(): Promise<Uint8Array> }).bytes()
      );
    },
    configurable: true,
    writable: true,
  },
  blob: {
    value(this: LazyRequest) {
      const s = this[kReq];
      const type = getHeaders(s).get('content-type') ?? '';
      return directBody(s)?.then((b) => new Blob([b], { type })) ?? getReal(s).blob();
    },
    configurable: true,
    writable: true,
  },
  [Symbol.for('nodejs.util.inspect.custom')]: {
    value(this: LazyRequest, depth: number, options: object, inspect: (v: unknown, o: object) => string) {
      return `Request ${inspect({ method: this.method, url: this.url, headers: this.headers }, { ...options, depth: depth - 1 })}`;
    },
  },
});

// A path that the URL parser leaves as it is: no dot segments, nothing to encode.
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:[/?]|$)/i;
const PLAIN_HOST = /^[a-z0-9.-]+(?::\d{1,5})?$/;

/** Build the lazy Request; null when the request cannot be one (→ 400). */
export function toRequest(headers: ScgiHeaders, client: ScgiClient): Request | null {
  const target = requestTarget(headers);
  let method = target.method;
  if (!TOKEN.test(method)) return null;
  if (!NORMALIZED_METHODS.has(method)) {
    const upper = method.toUpperCase();
    if (NORMALIZED_METHODS.has(upper)) method = upper;
  }
  let path = target.url;
  if (path.charCodeAt(0) !== 0x2f) return null; // `*`, or not a path at all
  if (path.includes('#')) path = path.replaceAll('#', '%23'); // part of the target, not a fragment
  let url = `${target.scheme}://${target.host}${path}`;
  if (!PLAIN_PATH.test(path) || DOT_SEGMENT.test(path) || !PLAIN_HOST.test(target.host)) {
    try {
      url = new URL(url).href;
    } catch {
      return null;
    }
  }
  const req = Object.create(requestProto) as LazyRequest;
  req[kReq] = { headers, client, method, url, h: null, real: null, ac: null, used: false, done: false };
  return req;
}

// ---------------------------------------------------------------------------
// The lightweight Response

const GlobalResponse = globalThis.Response;
const kRes = Symbol('scgi.fetch.response');

interface LightState {
  status: number;
  statusText: string;
  /** A string or bytes body kept as it is; null for none. */
  body: string | Uint8Array | null;
  init: ResponseInit | undefined;
  headers: Headers | null;
  real: Response | null;
}

function realResponse(s: LightState): Response {
  if (s.real === null) {
    const init: ResponseInit = { status: s.status, statusText: s.statusText, headers: s.headers ?? s.init?.headers };
    s.real = new GlobalResponse(s.body as BodyInit | null, init);
    s.headers = null;
  }
  return s.real;
}

/**
 * `Response` as the app makes it: a string, bytes or no body is kept as it
 * is (the adapter writes it without a stream); anything else, or any use
 * of the body from the app, makes the platform Response.
 */
const LightResponse = function Response(this: { [kRes]?: LightState }, body?: BodyInit | null, init?: ResponseInit) {
  if (new.target === undefined) throw new TypeError("Class constructor Response cannot be invoked without 'new'");
  if (body == null || typeof body === 'string' || (body instanceof Uint8Array && !(init instanceof GlobalResponse))) {
    const status = init?.status ?? 200;
    if (!Number.isInteger(status) || status < 200 || status > 599) return Reflect.construct(GlobalResponse, [body, init], new.target) as never;
    this[kRes] = { status, statusText: init?.statusText ?? '', body: body ?? null, init, headers: null, real: null };
    return;
  }
  return Reflect.construct(GlobalResponse, [body, init], new.target) as never;
} as unknown as typeof Response;
Object.setPrototypeOf(LightResponse, GlobalResponse);
const lightProto = Object.create(GlobalResponse.prototype) as Record<string | symbol, unknown>;
(LightResponse as unknown as { prototype: object }).prototype = lightProto;
Object.defineProperty(lightProto, 'constructor', { value: LightResponse, writable: true, configurable: true });
Object.defineProperty(LightResponse, Symbol.hasInstance, {
  value: (x: unknown) => typeof x === 'object' && x !== null && (kRes in x || x instanceof GlobalResponse),
});
for (const key of Object.getOwnPropertyNames(GlobalResponse.prototype)) {
  if (key === 'constructor') continue;
  const d = Object.getOwnPropertyDescriptor(GlobalResponse.prototype, key)!;
  if (d.get !== undefined) {
    Object.defineProperty(lightProto, key, {
      get(this: { [kRes]?: LightState }) {
        const s = this[kRes];
        if (s !== undefined && s.real === null) {
          if (key === 'status') return s.status;
          if (key === 'ok') return s.status >= 200 && s.status < 300;
          if (key === 'statusText') return s.statusText;
          if (key === 'headers') return (s.headers ??= defaultHeaders(s));
          if (key === 'bodyUsed') return false;
          if (key === 'redirected') return false;
          if (key === 'type') return 'default';
          if (key === 'url') return '';
        }
        return Reflect.get(GlobalResponse.prototype, key, s === undefined ? this : realResponse(s));
      },
      configurable: true,
    });
  } else if (typeof d.value === 'function') {
    Object.defineProperty(lightProto, key, {
      value(this: { [kRes]?: LightState }, ...args: unknown[]) {
        const s = this[kRes];
        const target = s === undefined ? this : realResponse(s);
        return (d.value as (...a: unknown[]) => unknown).apply(target, args);
      },
      configurable: true,
      writable: true,
    });
  }
}

function defaultHeaders(s: LightState): Headers {
  const h = new Headers(s.init?.headers);
  if (typeof s.body === 'string' && !h.has('content-type')) h.set('content-type', 'text/plain;charset=UTF-8');
  return h;
}

let overridden = false;
function overrideGlobals(): void {
  if (overridden || globalThis.Response !== GlobalResponse) return;
  overridden = true;
  Object.defineProperty(globalThis, 'Response', { value: LightResponse, writable: true, configurable: true, enumerable: false });
}

// A platform Response's body source (the string or bytes it was made with),
// read without its stream. undici keeps it in a symbol-keyed state object;
// when that is not there (another Node), the stream is read.
const undiciState = Object.getOwnPropertySymbols(new GlobalResponse(null)).find((s) => s.description === 'state');

function platformSource(res: Response): string | Uint8Array | undefined {
  if (undiciState === undefined) return undefined;
  const body = (res as unknown as Record<symbol, { body?: { source?: unknown; stream?: ReadableStream } | null } | undefined>)[undiciState]?.body;
  if (body == null || body.stream === undefined || body.stream.locked || res.bodyUsed) return undefined;
  const src = body.source;
  return typeof src === 'string' || src instanceof Uint8Array ? src : undefined;
}

// ---------------------------------------------------------------------------
// Writing the response

/** Statuses whose response never has a body or a Content-Length (RFC 9110 §8.6, §15.3.5, §15.4.5). */
function noBodyStatus(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

function headText(
  status: number,
  statusText: string,
  headers: Headers | HeadersInit | undefined,
  typeFor: string | null,
): { text: string; length: string | null } {
  const reason = statusText || STATUS_CODES[status] || 'Unknown';
  checkValue('Status', reason);
  let text = `Status: ${status} ${reason}\r\n`;
  let length: string | null = null;
  let hasType = false;
  const add = (name: string, value: string) => {
    name = name.toLowerCase(); // as Headers gives them
    checkName(name);
    checkValue(name, value);
    if (name === 'content-length') {
      length = value;
      return;
    }
    if (name === 'content-type') hasType = true;
    text += `${name}: ${value}\r\n`;
  };
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      if (name !== 'set-cookie') add(name, value);
    });
    for (const cookie of headers.getSetCookie()) add('set-cookie', cookie);
  } else if (Array.isArray(headers)) {
    for (const [name, value] of headers as [string, string][]) add(name, String(value).trim());
  } else if (headers !== undefined) {
    for (const name in headers) add(name, String((headers as Record<string, string>)[name]).trim());
  }
  if (!hasType && typeFor !== null) text += `content-type: ${typeFor}\r\n`;
  return { text, length };
}

/** Write a complete head and body (or none) in one `end`. */
function endWhole(client: ScgiClient, head: string, body: string | Uint8Array | null, length: string | null): void {
  if (length !== null) head += `content-length: ${length}\r\n`;
  head += '\r\n';
  if (body === null || body.length === 0) {
    client.end(head, 'latin1');
  } else if (typeof body === 'string') {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range, to pick the one-string write
    if (!/[^\x00-\x7f]/.test(head)) client.end(head + body);
    else client.end(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)]));
  } else {
    const out = Buffer.allocUnsafe(head.length + body.byteLength);
    out.write(head, 0, 'latin1');
    out.set(body, head.length);
    client.end(out);
  }
}

/** The Content-Length to send for a body of `n` bytes, given what the app said. */
function lengthFor(method: string, status: number, explicit: string | null, n: number | null): string | null {
  if (noBodyStatus(status)) return null;
  if (explicit !== null) return explicit;
  if (n === null) return null;
  // HEAD: the length GET would have, when the app handed a body; none for no body.
  if (method === 'HEAD' && n === 0) return null;
  return String(n);
}

function byteLength(body: string | Uint8Array | null): number {
  return body === null ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
}

/**
 * Write a Response to the client as a CGI response. A string or bytes body
 * is written at once (the result is not a promise); a stream is written with
 * backpressure and the promise resolves when it is done.
 */
export function writeResponse(response: Response, client: ScgiClient, method: string): Promise<void> | undefined {
  const light = (response as unknown as { [kRes]?: LightState })[kRes];
  if (light !== undefined && light.real === null) {
    const status = light.status;
    const body = method === 'HEAD' || noBodyStatus(status) ? null : light.body;
    const headers = light.headers ?? light.init?.headers;
    const head = headText(status, light.statusText, headers, light.headers === null && typeof light.body === 'string' ? 'text/plain;charset=UTF-8' : null);
    endWhole(client, head.text, body, lengthFor(method, status, head.length, light.body === null ? 0 : byteLength(light.body)));
    return undefined;
  }
  return writePlatform(response, client, method);
}

async function writePlatform(response: Response, client: ScgiClient, method: string): Promise<void> {
  const status = response.status;
  const head = headText(status, response.statusText, response.headers, null);
  const stream = response.body;
  const source = stream === null ? null : platformSource(response);
  if (stream === null || source !== undefined || method === 'HEAD' || noBodyStatus(status)) {
    const n = stream === null ? 0 : source !== undefined ? byteLength(source!) : null;
    if (stream !== null && (source === undefined || method === 'HEAD' || noBodyStatus(status))) await stream.cancel().catch(() => {});
    const body = method === 'HEAD' || noBodyStatus(status) ? null : (source ?? null);
    endWhole(client, head.text, body, lengthFor(method, status, head.length, n));
    return;
  }
  await writeStream(stream.getReader(), client, head.text, head.length);
}

/** A microtask later: `undefined` unless `p` settled by then. */
function soon<T>(p: Promise<T>): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((r) => queueMicrotask(() => queueMicrotask(() => r(undefined))))]);
}

async function writeStream(reader: ReadableStreamDefaultReader<Uint8Array>, client: ScgiClient, head: string, explicit: string | null): Promise<void> {
  const onClose = () => {
    reader.cancel().catch(() => {});
  };
  client.once('close', onClose);
  try {
    // A body complete at once (a buffered stream): one write with Content-Length.
    const chunks: Uint8Array[] = [];
    let pending: Promise<ReadResult> | null = null;
    for (let i = 0; i < 2; i++) {
      pending = reader.read();
      const r = await soon(pending);
      if (r === undefined) break;
      pending = null;
      if (r.done) {
        const n = chunks.reduce((a, c) => a + c.byteLength, 0);
        const body = chunks.length === 0 ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        endWhole(client, head, body, explicit ?? String(n));
        return;
      }
      chunks.push(r.value);
    }
    if (explicit !== null) head += `content-length: ${explicit}\r\n`;
    client.write(head + '\r\n', 'latin1');
    for (const c of chunks) if (!client.write(c)) await drained(client);
    let chunk = await (pending ?? reader.read());
    while (!chunk.done) {
      if (client.destroyed) return;
      if (!client.write(chunk.value)) await drained(client);
      chunk = await reader.read();
    }
    client.end();
  } finally {
    client.off('close', onClose);
  }
}

function drained(client: ScgiClient): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      client.off('drain', done);
      client.off('close', done);
      resolve();
    };
    client.once('drain', done);
    client.once('close', done);
  });
}

/**
 * A Response of another fetch implementation (@whatwg-node/fetch, which
 * GraphQL Yoga returns; node-fetch; undici's npm copy) is not an instance of
 * the global class. Taken as @hono/node-server takes it: an integer status
 * (200–599, what the Response constructor allows), headers as anything the
 * Headers constructor takes (their own Headers are iterable), and a body that
 * is null or has getReader(). Anything else is the app's error.
 */
function fromResponseLike(x: unknown): Response {
  const r = x as { status?: unknown; statusText?: unknown; headers?: unknown; body?: unknown } | null;
  const what = r === null ? 'null' : typeof r;
  if (r === null || typeof r !== 'object') throw new ScgiError('ERR_SCGI_INVALID_APP', `fetch handler returned ${what}, not a Response`);
  const { status, headers, body } = r;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw new ScgiError('ERR_SCGI_INVALID_APP', `fetch handler returned an object with status ${String(status)}, not a Response (an integer status 200-599)`);
  }
  if (!('headers' in r) || (body != null && typeof (body as { getReader?: unknown }).getReader !== 'function')) {
    throw new ScgiError(
      'ERR_SCGI_INVALID_APP',
      'fetch handler returned an object that is not a Response (it needs headers, and a body that is null or a ReadableStream)',
    );
  }
  let h: Headers;
  try {
    h = headers instanceof Headers ? headers : new Headers((headers ?? undefined) as HeadersInit | undefined);
  } catch (err) {
    throw new ScgiError('ERR_SCGI_INVALID_APP', `fetch handler returned a Response whose headers Headers cannot hold: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // The shape writePlatform reads; no undici state, so the body is read as a stream.
  return { status, statusText: typeof r.statusText === 'string' ? r.statusText : '', headers: h, body: body ?? null } as unknown as Response;
}

const BAD_REQUEST = 'Status: 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\nBad Request\n';

/**
 * Wrap a fetch handler as an SCGI handler: `serve(fromFetch(app.fetch), options)`.
 * Accepts the handler function or an object with a `fetch` method (a Hono app).
 */
export function fromFetch(app: FetchHandler | { fetch: FetchHandler }, options: FromFetchOptions = {}): Handler {
  const handler: FetchHandler | null = typeof app === 'function' ? app : typeof app?.fetch === 'function' ? app.fetch.bind(app) : null;
  if (handler === null) throw new ScgiError('ERR_SCGI_INVALID_APP', 'fromFetch: expected a fetch handler or an object with a fetch method');
  if (options.overrideGlobalObjects !== false) overrideGlobals();
  const finish = (response: unknown, request: Request, client: ScgiClient): Promise<void> | void => {
    if (!(response instanceof GlobalResponse) && (response as { [kRes]?: unknown } | null)?.[kRes] === undefined) {
      response = fromResponseLike(response);
    }
    const state = (request as LazyRequest)[kReq];
    const written = writeResponse(response as Response, client, state.method);
    if (written === undefined) {
      state.done = true;
      return;
    }
    return written.then(() => {
      state.done = true;
    });
  };
  const h: Handler = (headers, client) => {
    const request = toRequest(headers, client);
    if (request === null) {
      client.end(BAD_REQUEST, 'latin1');
      return;
    }
    const response = handler(request, { headers, client });
    if (response !== null && typeof (response as Promise<Response>)?.then === 'function') {
      return (response as Promise<Response>).then((r) => finish(r, request, client));
    }
    return finish(response, request, client);
  };
  (h as unknown as Record<symbol, boolean>)[Symbol.for('scgi.handler')] = true; // the CLI serves it as it is
  return h;
}
