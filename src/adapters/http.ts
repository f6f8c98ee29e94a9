/**
 * `scgi/http`: run a Node `(req, res)` request listener (an Express, Koa or
 * Connect app, unchanged) over SCGI.
 *
 * `req` and `res` are real `http.IncomingMessage` and `http.ServerResponse`
 * objects (frameworks such as Express swap their prototypes, so look-alikes
 * would lose their methods), attached to a small socket object that stands in
 * for the connection. The response that Node formats as HTTP/1.1 is rewritten
 * on its way out: the status line becomes a CGI `Status:` field and the
 * hop-by-hop fields Node adds (Connection, Keep-Alive) are dropped; chunked
 * encoding is never used, since the end of an SCGI response is the close.
 */
import { IncomingMessage, ServerResponse, type IncomingHttpHeaders } from 'node:http';
import { Duplex } from 'node:stream';
import { httpHeaders, requestTarget } from '../protocol/cgi.ts';
import type { Handler, ScgiClient } from '../connection/scgi-client.ts';
import type { ScgiHeaders } from '../protocol/scgi-headers.ts';
import { ScgiError } from '../errors.ts';
import { STATUS_LINE } from '../protocol/wire.ts';

/** Marks a handler made by an adapter (the CLI serves it as it is). */
const HANDLER_TAG = Symbol.for('scgi.handler');

/** A Node request listener, as `http.createServer` takes. */
export type NodeListener = (req: IncomingMessage, res: ServerResponse) => unknown;

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);

/**
 * The stand-in socket: what `req.socket` / `res.socket` are. Its writable side
 * carries the HTTP/1.1 bytes Node's ServerResponse produces; the head is
 * rewritten to CGI form and everything goes to the SCGI client.
 */
class CgiSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly encrypted: boolean;
  readonly #client: ScgiClient;
  /** The start of the head while it is incomplete; EMPTY before the first write, null once it went out. */
  #head: Buffer | null = EMPTY;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #flushScheduled = false;
  /** The response written through this socket (set by fromNodeListener). */
  res: ServerResponse | null = null;

  constructor(client: ScgiClient, target: ReturnType<typeof requestTarget>, headers: ScgiHeaders) {
    super({ allowHalfOpen: true, emitClose: true, decodeStrings: false });
    this.#client = client;
    this.remoteAddress = target.remoteAddress;
    this.remotePort = target.remotePort;
    this.remoteFamily = target.remoteAddress?.includes(':') ? 'IPv6' : target.remoteAddress ? 'IPv4' : undefined;
    this.localAddress = headers.get('SERVER_ADDR');
    this.localPort = target.serverPort;
    this.encrypted = target.scheme === 'https';
  }

  override _read(): void {
    // Nothing to read: the body reaches `req` directly.
  }

  /**
   * Node's ServerResponse writes its head and body corked (one `_writev`);
   * what it writes is held until the end of the tick and goes out in one
   * client write (a head and a small body: one socket write, not three).
   */
  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#hold(chunk, encoding);
    this.#afterHold(callback);
  }

  override _writev(chunks: { chunk: Buffer | string; encoding: BufferEncoding }[], callback: (err?: Error | null) => void): void {
    for (const c of chunks) this.#hold(c.chunk, c.encoding);
    this.#afterHold(callback);
  }

  #hold(chunk: Buffer | string, encoding: BufferEncoding): void {
    if (typeof chunk === 'string') {
      if (chunk.length === 0) return;
      if (this.#head === EMPTY && (encoding === 'latin1' || encoding === 'utf8' || encoding === 'utf-8')) {
        // The common case: Node writes its head (latin1) and, for a string
        // body in utf8 or latin1, the body in the same string. Rewrite the
        // head in the string and encode once: the same bytes as encoding
        // first and rewriting the head's bytes, without the round trip.
        const end = chunk.indexOf('\r\n\r\n');
        if (end !== -1) {
          this.#head = null;
          const out = Buffer.from(toCgiHead(chunk.slice(0, end)) + chunk.slice(end), encoding);
          this.#pending.push(out);
          this.#pendingBytes += out.length;
          return;
        }
      }
    }
    let buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    if (buf.length === 0) return;
    if (this.#head !== null) {
      const head = this.#head.length === 0 ? buf : Buffer.concat([this.#head, buf]);
      const end = head.indexOf(CRLFCRLF);
      if (end === -1) {
        this.#head = head;
        return;
      }
      this.#head = null;
      this.#pending.push(Buffer.from(toCgiHead(head.toString('latin1', 0, end)), 'latin1'));
      buf = head.subarray(end);
    }
    this.#pending.push(buf);
    this.#pendingBytes += buf.length;
  }

  #afterHold(callback: (err?: Error | null) => void): void {
    if (this.#pendingBytes >= 65536) {
      // A large body: out now, with the client's backpressure.
      if (this.#flush()) callback();
      else this.#client.once('drain', () => callback());
      return;
    }
    if (!this.#flushScheduled && this.#pending.length > 0) {
      this.#flushScheduled = true;
      process.nextTick(flushSocket, this);
    }
    callback();
  }

  /** Send what is held; false when the client asks to wait for 'drain'. */
  #flush(): boolean {
    this.#flushScheduled = false;
    const pending = this.#pending;
    if (pending.length === 0) return true;
    const client = this.#client;
    const out = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (client.destroyed || client.writableEnded) return true;
    return client.write(out);
  }

  /** @internal the end-of-tick flush. */
  _flushHeld(): void {
    if (!this.#flushScheduled) return;
    const res = this.res;
    if (res?.writableEnded && this.writableLength === 0 && !this.#client.destroyed && !this.#client.writableEnded) {
      // The whole response is here (the common case: a head and a body given
      // to res.end()): the client's end, one socket write with the FIN.
      this.#flushScheduled = false;
      const pending = this.#pending;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#client.end(pending.length === 1 ? pending[0]! : Buffer.concat(pending));
      return;
    }
    this.#flush();
  }

  override _final(callback: (err?: Error | null) => void): void {
    // What was written is out already: the end-of-tick flush is queued
    // before the write callback that lets ServerResponse finish.
    const client = this.#client;
    if (!client.destroyed && !client.writableEnded) client.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.#client.destroyed && !this.#client.writableFinished) this.#client.destroy();
    callback(err);
  }

  setTimeout(_ms: number, cb?: () => void): this {
    // The server's timeouts (requestTimeout) apply; frameworks may call this.
    if (cb) this.once('timeout', cb);
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  address(): { address: string; port: number } | Record<string, never> {
    return this.localAddress ? { address: this.localAddress, port: this.localPort ?? 0 } : {};
  }
}

function alwaysFalse(): boolean {
  return false;
}

function ignore(): void {}

/** The socket's 'drain' is the response's (one shared listener, no closure per request). */
function forwardDrain(this: CgiSocket): void {
  this.res?.emit('drain');
}

function flushSocket(socket: CgiSocket): void {
  socket._flushHeld();
}

const HOP_BY_HOP = /\r\n(?:connection|keep-alive|transfer-encoding):[^\r]*/gi;

/** `HTTP/1.1 200 OK\r\nA: b...` → `Status: 200 OK\r\nA: b...` without hop-by-hop fields. */
function toCgiHead(head: string): string {
  const eol = head.indexOf('\r\n');
  const first = eol === -1 ? head : head.slice(0, eol);
  const rest = eol === -1 ? '' : head.slice(eol).replace(HOP_BY_HOP, '');
  const m = STATUS_LINE.exec(first);
  return (m ? `Status: ${m[1]} ${m[2] ?? ''}`.trimEnd() : first) + rest;
}

/** Build a real IncomingMessage for the SCGI request. */
function makeRequest(headers: ScgiHeaders, client: ScgiClient, socket: CgiSocket, target: ReturnType<typeof requestTarget>): IncomingMessage {
  const req = new IncomingMessage(socket as never);
  const mapped = httpHeaders(headers);
  req.method = target.method;
  req.url = target.url;
  req.httpVersion = target.httpVersion;
  const dot = target.httpVersion.indexOf('.');
  req.httpVersionMajor = dot === -1 ? Number(target.httpVersion) || 1 : Number(target.httpVersion.slice(0, dot)) || 1;
  req.httpVersionMinor = dot === -1 ? 0 : Number(target.httpVersion.slice(dot + 1)) || 0;
  req.headers = mapped.headers as IncomingHttpHeaders;
  req.rawHeaders = mapped.rawHeaders;
  // What node:http's server sets on every request (IncomingMessage's own
  // defaults differ): no upgrade over SCGI, and the server's
  // joinDuplicateHeaders option left unset.
  const own = req as unknown as { upgrade: boolean; joinDuplicateHeaders: boolean | null };
  own.upgrade = false;
  own.joinDuplicateHeaders = null;
  if (headers.contentLength === 0) {
    // No body: `req` ends at once (as node:http's for a GET), the client's
    // readable side is never touched.
    req.complete = true;
    req.push(null);
    return req;
  }
  // The body: exactly CONTENT_LENGTH bytes from the client, with backpressure.
  const onData = (chunk: Buffer) => {
    if (!req.push(chunk)) client.pause();
  };
  const onEnd = () => {
    req.complete = true;
    req.push(null);
  };
  client.on('data', onData);
  client.once('end', onEnd);
  client.once('error', (err) => req.destroy(err));
  // Own property: survives frameworks swapping the prototype.
  req._read = () => {
    client.resume();
  };
  return req;
}

/**
 * Wrap a Node request listener as an SCGI handler:
 * `serve(fromNodeListener(app), options)`.
 */
export function fromNodeListener(listener: NodeListener): Handler {
  if (typeof listener !== 'function') {
    throw new ScgiError(
      'ERR_SCGI_INVALID_APP',
      `fromNodeListener: expected a (req, res) listener, got ${listener === null ? 'null' : typeof listener} (a Koa app: app.callback(); a Fastify app: see the README)`,
    );
  }
  const handler: Handler = (headers, client) => {
    const target = requestTarget(headers);
    const socket = new CgiSocket(client, target, headers);
    const req = makeRequest(headers, client, socket, target);
    const res = new ServerResponse(req);
    // The end of an SCGI response is the end of the connection: no keep-alive
    // and never chunked framing. useChunkedEncodingByDefault stays on (as for
    // an HTTP/1.1 request to node:http, whatever SERVER_PROTOCOL says) so that
    // Node itself decides where a length is known: `end(body)` or an empty
    // `end()` before the head was built gets Content-Length, exactly where
    // node:http sends one. Where node:http would frame chunked, the framing
    // is switched off here (chunkedEncoding always reads false, also for an
    // explicit Transfer-Encoding) and toCgiHead drops the field: the
    // front sees a close-delimited body.
    res.shouldKeepAlive = false;
    res.useChunkedEncodingByDefault = true;
    Object.defineProperty(res, 'chunkedEncoding', { get: alwaysFalse, set: ignore, configurable: true });
    res.assignSocket(socket as never);
    socket.res = res;
    socket.on('drain', forwardDrain);
    let finished = false;
    client.once('close', () => {
      if (!finished) {
        // The browser went away (the front closed before the response
        // ended): as node:http, `req` is destroyed ('aborted' when its body
        // was not complete, then 'close') and so is the socket ('close' on res).
        if (!req.destroyed) req.destroy();
      }
      if (!socket.destroyed) socket.destroy();
    });
    return new Promise<void>((resolve, reject) => {
      res.once('finish', () => {
        finished = true;
        socket.end(); // its _final ends the client with what is held
        // As node:http: a body nobody reads is dumped, so `req` ends and
        // emits 'close' (SSE and long-poll code clean up on it).
        if (req.readableFlowing === null && !req.readableEnded) req.resume();
        resolve();
      });
      res.once('close', () => resolve());
      try {
        const result = listener(req, res);
        if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
          (result as Promise<unknown>).then(undefined, reject);
        }
      } catch (err) {
        reject(err);
      }
    });
  };
  (handler as unknown as Record<symbol, boolean>)[HANDLER_TAG] = true;
  return handler;
}

export type { IncomingMessage, ServerResponse };
