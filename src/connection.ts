/**
 * One SCGI connection: read the netstring, call the handler with the headers
 * and a `ScgiClient`, stream exactly CONTENT_LENGTH body bytes to it, write
 * its response, then drain whatever the front still sends and close.
 *
 * Hot-path rules: socket listeners are module-level functions (no closures
 * per connection), timeouts are checked by one sweep timer per server (no
 * timers per socket), a response head and its first body chunk go out in one
 * corked write.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { ScgiError } from './errors.ts';
import { errorFromParse, headersFromParse, ScgiHeaders, type HeaderEncoding } from './headers.ts';
import { HeaderBuffer } from './header-buffer.ts';
import { OUT_HEADER_END, Status, type ParserBackend } from './parser/types.ts';
import { buildHead, plainResponse, type OutgoingHeaders } from './response.ts';

/** What a request handler gets: the headers, and the connection to the front. */
export type Handler = (headers: ScgiHeaders, client: ScgiClient) => unknown;

/** Counters, since the server started. */
export interface ScgiStats {
  /** Connections accepted. */
  connections: number;
  /** Requests handed to the handler. */
  requests: number;
  /** Connections closed for bad input (malformed or over a limit) without a handler call. */
  rejected: number;
  /** Connections closed by headerTimeout or requestTimeout. */
  timeouts: number;
  /** Handler errors caught (thrown, rejected, or emitted on the client). */
  errors: number;
  /** Connections answered 503 because maxConnections were open. */
  overloaded: number;
}

/** Options the connection needs, already validated. */
export interface ConnectionOptions {
  maxHeaderSize: number;
  maxHeadersCount: number;
  strict: boolean;
  maxBodySize: number;
  headerTimeout: number;
  requestTimeout: number;
  drainTimeout: number;
  maxDrainSize: number;
  allowHalfOpen: boolean;
  headerEncoding: HeaderEncoding;
  catchErrors: boolean | ((err: unknown) => boolean);
  onError: (err: Error, client: ScgiClient | null) => void;
}

/** The server state shared by its connections. */
export interface ConnectionHost {
  readonly handler: Handler;
  readonly options: ConnectionOptions;
  readonly parser: ParserBackend['parse'];
  readonly out: Uint32Array;
  readonly stats: ScgiStats;
  readonly connections: Set<Connection>;
  /** Called when a connection rejects its input (emits 'clientError'). */
  clientError(err: ScgiError, socket: Socket): void;
  /** Called when a connection is gone. */
  released(conn: Connection): void;
}

const HEADER = 0; // waiting for the netstring
const BODY = 1; // handler running; body bytes go to the client
const DRAIN = 2; // response finished (or refused); the rest of what the front sends is discarded
const CLOSED = 3;

const kConn = Symbol('scgi.connection');
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
type ConnSocket = Socket & { [kConn]: Connection };

function onSocketData(this: ConnSocket, chunk: Buffer): void {
  this[kConn].data(chunk);
}
function onSocketEnd(this: ConnSocket): void {
  this[kConn].end();
}
function onSocketClose(this: ConnSocket): void {
  this[kConn].closed();
}
function onSocketError(this: ConnSocket, _err: Error): void {
  // ECONNRESET / EPIPE from a front that went away: 'close' follows and cleans up.
}
function onSocketDrain(this: ConnSocket): void {
  this[kConn].drained();
}
function onClientError(this: ScgiClient, _err: Error): void {
  // The handler sees stream errors through its reads and writes; this listener
  // only keeps an unobserved one from crashing the process.
}

/**
 * The handler's connection to the front. Readable side: exactly
 * CONTENT_LENGTH body bytes, then EOF. Writable side: the response, raw bytes
 * (a CGI response: `Status: 200 OK\r\n...\r\n\r\nbody`) or through
 * `writeHead`. `for await (const chunk of client)` does not end the writable
 * side.
 */
export class ScgiClient extends Duplex {
  /** The request headers (the handler's first argument). */
  readonly headers: ScgiHeaders;
  /** The connection's socket (for remote/local address and low-level control). */
  readonly socket: Socket;
  readonly #conn: Connection;
  #head: string | null = null;
  #headHasLength = false;
  #headAscii = true;
  #bodyStarted = false;
  #started = false;
  #drainCallback: ((err?: Error | null) => void) | null = null;

  constructor(conn: Connection, headers: ScgiHeaders) {
    // No options object: the defaults (allowHalfOpen, decodeStrings, emitClose,
    // autoDestroy all true) are what we want, and parsing options costs ~0.25 µs.
    super();
    this.#conn = conn;
    this.headers = headers;
    this.socket = conn.socket;
    this.on('error', onClientError);
  }

  /** True once any response byte has gone to the front. */
  get headersSent(): boolean {
    return this.#started;
  }

  /**
   * Set the response status and header fields. They are sent with the first
   * body write (or at `end`); `end(body)` adds `Content-Length` when the head
   * has none and nothing else was written. Throws `ERR_SCGI_INVALID_RESPONSE_HEADER`
   * for a name that is not a token or a value with CR, LF or NUL.
   */
  writeHead(status: number, reason?: string | OutgoingHeaders, headers?: OutgoingHeaders): this {
    if (this.#started || this.#bodyStarted) {
      throw new ScgiError('ERR_SCGI_HEADERS_SENT', 'writeHead after the response started');
    }
    if (typeof reason !== 'string' && reason !== undefined) {
      headers = reason;
      reason = undefined;
    }
    const head = buildHead(status, reason, headers);
    this.#head = head.text;
    this.#headHasLength = head.hasLength;
    this.#headAscii = !NON_ASCII.test(head.text);
    return this;
  }

  override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (chunk != null && (chunk as { length?: number }).length !== 0) this.#bodyStarted = true;
    return super.write(chunk, encoding as BufferEncoding, cb as (err?: Error | null) => void);
  }

  override end(chunk?: unknown, encoding?: unknown, cb?: unknown): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8';
    if (this.#head !== null && !this.#bodyStarted && !this.#headHasLength && !this.writableEnded) {
      let length = 0;
      if (typeof chunk === 'string') length = Buffer.byteLength(chunk, enc);
      else if (chunk instanceof Uint8Array) length = chunk.byteLength;
      this.#head += `Content-Length: ${length}\r\n`;
      this.#headHasLength = true;
    }
    // Fast path for the common whole response given to end(): nothing written
    // before, nothing queued. Head and body go straight to the socket with
    // the FIN in one corked write, skipping the Writable queue for the body.
    if (
      !this.#started &&
      this.writableLength === 0 &&
      !this.writableEnded &&
      !this.destroyed &&
      (chunk == null || typeof chunk === 'string' || chunk instanceof Uint8Array)
    ) {
      const socket = this.socket;
      if (!socket.destroyed && socket.writable) {
        this.#started = true;
        const head = this.#head;
        this.#head = null;
        const body = chunk == null || (chunk as { length: number }).length === 0 ? null : (chunk as string | Uint8Array);
        if (head === null) {
          this.#conn.finish(body, enc);
        } else if (body === null) {
          this.#conn.finish(head + '\r\n', 'latin1');
        } else if (typeof body === 'string' && (enc === 'latin1' || ((enc === 'utf8' || enc === 'utf-8') && this.#headAscii))) {
          // One string, one write syscall (writev of a head and a body costs twice as much).
          this.#conn.finish(head + '\r\n' + body, enc);
        } else if (typeof body !== 'string' && body.byteLength <= 65536) {
          const out = Buffer.allocUnsafe(head.length + 2 + body.byteLength);
          out.write(head + '\r\n', 0, 'latin1');
          out.set(body, head.length + 2);
          this.#conn.finish(out);
        } else {
          socket.cork();
          socket.write(head + '\r\n', 'latin1');
          socket.write(body, enc);
          this.#conn.finish(); // socket.end() flushes the cork, then FIN
        }
        return super.end(cb as never);
      }
    }
    return super.end(chunk as never, encoding as never, cb as never);
  }

  override [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    // Node's default iterator destroys the stream when the loop ends, which
    // would kill the writable side before the handler answers.
    return this.iterator({ destroyOnReturn: false });
  }

  override _read(): void {
    this.#conn.wantBody();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#send(chunk, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    const socket = this.socket;
    socket.cork();
    for (let i = 0; i < chunks.length - 1; i++) this.#send(chunks[i]!.chunk, null);
    this.#send(chunks[chunks.length - 1]!.chunk, callback);
    socket.uncork();
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.#head !== null) this.#send(null, null);
    this.#conn.finish();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const cb = this.#drainCallback;
    this.#drainCallback = null;
    if (cb !== null) cb(err ?? new ScgiError('ERR_SCGI_HANDLER', 'client destroyed'));
    this.#conn.clientDestroyed(err);
    callback(err);
  }

  /** Write `chunk` (with the pending head, if any) to the socket. */
  #send(chunk: Buffer | null, callback: ((err?: Error | null) => void) | null): void {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) {
      if (callback !== null) callback(new ScgiError('ERR_SCGI_HANDLER', 'the front closed the connection'));
      return;
    }
    this.#started = true;
    let ok: boolean;
    const head = this.#head;
    if (head !== null) {
      this.#head = null;
      if (chunk === null || chunk.length === 0) {
        ok = socket.write(head + '\r\n', 'latin1');
      } else {
        socket.cork();
        socket.write(head + '\r\n', 'latin1');
        ok = socket.write(chunk);
        socket.uncork();
      }
    } else {
      if (chunk === null) return;
      ok = socket.write(chunk);
    }
    if (callback === null) return;
    if (ok) callback();
    else {
      this.#drainCallback = callback;
      this.#conn.awaitDrain();
    }
  }

  /** @internal the socket drained: let the next write through. */
  _drained(): void {
    const cb = this.#drainCallback;
    this.#drainCallback = null;
    if (cb !== null) cb();
  }

  /** @internal discard an unsent head (for the 500 after a handler error). */
  _resetHead(): void {
    this.#head = null;
    this.#headHasLength = false;
    this.#bodyStarted = false;
  }
}

/** @internal One accepted socket, from the first byte to close. */
export class Connection {
  readonly socket: Socket;
  readonly #host: ConnectionHost;
  phase = HEADER;
  /** When the current phase times out (ms since epoch); 0 = never. */
  deadline = 0;
  /** Header bytes received so far, while they come in pieces. */
  readonly #bytes = new HeaderBuffer();
  /** Bytes the parser needs before it can say more (0: not known yet). */
  #need = 0;
  /** Any byte received (an empty connection is a quiet close). */
  #gotBytes = false;
  #client: ScgiClient | null = null;
  #bodyLeft = 0;
  #discarded = 0;
  #responded = false;
  #eofPushed = false;

  constructor(socket: Socket, host: ConnectionHost, now: number) {
    this.socket = socket;
    this.#host = host;
    (socket as ConnSocket)[kConn] = this;
    const opts = host.options;
    if (opts.headerTimeout > 0) this.deadline = now + opts.headerTimeout;
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    socket.on('error', onSocketError);
  }

  /** Refuse this connection with a whole response (503 when over maxConnections). */
  refuse(status: number, body: string, now: number): void {
    this.#startDrain(now);
    this.socket.end(plainResponse(status, body), 'latin1');
  }

  data(chunk: Buffer): void {
    if (this.phase === BODY) {
      this.#feedBody(chunk);
    } else if (this.phase === HEADER) {
      this.#gotBytes = true;
      this.#header(chunk);
    } else if (this.phase === DRAIN) {
      this.#discard(chunk.length);
    }
  }

  #header(chunk: Buffer): void {
    let buf = chunk;
    const gathering = this.#bytes.gathering || chunk.length < this.#need;
    if (gathering) {
      buf = this.#bytes.append(chunk, this.#need);
      if (buf.length < this.#need) return;
    }
    const host = this.#host;
    const opts = host.options;
    const out = host.out;
    const status = host.parser(buf, out, opts.maxHeaderSize, opts.maxHeadersCount, opts.strict ? 1 : 0);
    if (status === Status.Partial) {
      this.#need = out[OUT_HEADER_END]!;
      if (!gathering) this.#bytes.append(buf, this.#need);
      return;
    }
    this.#bytes.reset();
    if (status === Status.Error) {
      this.#reject(errorFromParse(out));
      return;
    }
    const headerEnd = out[OUT_HEADER_END]!;
    const headers = headersFromParse(buf, out, opts.headerEncoding);
    const contentLength = headers.contentLength;
    const now = Date.now();
    if (contentLength > opts.maxBodySize) {
      host.stats.rejected++;
      host.clientError(
        new ScgiError('ERR_SCGI_BODY_TOO_LARGE', `CONTENT_LENGTH ${contentLength} exceeds maxBodySize ${opts.maxBodySize}`),
        this.socket,
      );
      this.#bodyLeft = contentLength;
      this.refuse(413, 'Payload Too Large\n', now);
      this.#discardExtra(buf, headerEnd);
      return;
    }
    this.phase = BODY;
    this.deadline = opts.requestTimeout > 0 ? now + opts.requestTimeout : 0;
    this.#bodyLeft = contentLength;
    const client = new ScgiClient(this, headers);
    this.#client = client;
    // An empty body's EOF is pushed when someone reads (wantBody): a handler
    // that never reads costs no stream end machinery.
    if (headerEnd < buf.length) this.#feedBody(buf.subarray(headerEnd));
    host.stats.requests++;
    this.#call(client, headers);
  }

  #call(client: ScgiClient, headers: ScgiHeaders): void {
    let result: unknown;
    try {
      result = this.#host.handler(headers, client);
    } catch (err) {
      this.handlerError(err, client);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(undefined, (err: unknown) => this.handlerError(err, client));
    }
  }

  /** A handler threw, rejected, or its client stream failed. */
  handlerError(err: unknown, client: ScgiClient): void {
    const host = this.#host;
    const catchErrors = host.options.catchErrors;
    const caught = typeof catchErrors === 'function' ? catchErrors(err) : catchErrors;
    if (!caught) {
      // As `#:exception-key` #f: let it crash, for debugging.
      process.nextTick(() => {
        throw err;
      });
      return;
    }
    host.stats.errors++;
    const error = err instanceof Error ? err : new ScgiError('ERR_SCGI_HANDLER', `handler failed with ${String(err)}`);
    try {
      host.options.onError(error, client);
    } catch {
      // an onError that throws must not take the server down
    }
    if (this.phase === CLOSED || client.destroyed) return;
    if (!client.headersSent && !client.writableEnded) {
      client._resetHead();
      client.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      client.end('Internal Server Error\n');
    } else if (!client.writableEnded) {
      // Part of a response is out: the front must see it is incomplete.
      this.#abort();
    }
  }

  /**
   * Close a connection whose response is incomplete. Over TCP with a reset
   * (RST): nginx then logs the upstream reset and cuts the browser's response
   * instead of passing a truncated body on as complete. A unix socket has no
   * reset; there a response without Content-Length looks complete to the
   * front (docs/security.md says to send Content-Length when it matters).
   */
  #abort(): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (socket.remoteAddress !== undefined && typeof socket.resetAndDestroy === 'function') {
      try {
        socket.resetAndDestroy();
        return;
      } catch {
        // not a TCP handle after all
      }
    }
    socket.destroy();
  }

  #feedBody(chunk: Buffer): void {
    const left = this.#bodyLeft;
    if (left === 0) {
      this.#discard(chunk.length);
      return;
    }
    const client = this.#client!;
    let part = chunk;
    if (chunk.length > left) {
      part = chunk.subarray(0, left);
      this.#discard(chunk.length - left);
    }
    this.#bodyLeft = left - part.length;
    const more = client.push(part);
    if (this.#bodyLeft === 0) {
      this.#eofPushed = true;
      client.push(null);
    } else if (!more) this.socket.pause();
  }

  /** The client wants more body bytes. */
  wantBody(): void {
    if (this.#bodyLeft > 0) {
      if (this.phase === BODY && this.socket.isPaused()) this.socket.resume();
    } else if (!this.#eofPushed) {
      this.#eofPushed = true;
      this.#client!.push(null);
    }
  }

  awaitDrain(): void {
    this.socket.once('drain', onSocketDrain);
  }

  drained(): void {
    this.#client?._drained();
  }

  /** The handler ended its response; `last` is what is still to write, if anything. */
  finish(last?: string | Uint8Array | null, encoding?: BufferEncoding): void {
    if (this.#responded) return;
    this.#responded = true;
    const client = this.#client;
    if (client !== null && this.#bodyLeft > 0) {
      // The handler answered without reading all the body: it gives up the rest.
      this.#bodyLeft = 0;
      this.#eofPushed = true;
      client.push(null);
    }
    this.#startDrain(Date.now());
    if (last == null) this.socket.end();
    else this.socket.end(last, encoding);
  }

  #startDrain(now: number): void {
    this.phase = DRAIN;
    const t = this.#host.options.drainTimeout;
    this.deadline = t > 0 ? now + t : 0;
    // Keep reading: closing with unread bytes makes the kernel send RST, and
    // nginx and Apache then truncate the response.
    if (this.socket.isPaused()) this.socket.resume();
  }

  #discard(n: number): void {
    this.#discarded += n;
    if (this.#discarded > this.#host.options.maxDrainSize) this.socket.destroy();
  }

  #discardExtra(buf: Buffer, headerEnd: number): void {
    if (headerEnd < buf.length) this.#discard(buf.length - headerEnd);
  }

  #reject(err: ScgiError): void {
    this.#host.stats.rejected++;
    this.phase = CLOSED;
    this.#host.clientError(err, this.socket);
    this.socket.destroy();
  }

  /** The front half-closed (FIN). */
  end(): void {
    if (this.phase === HEADER) {
      if (!this.#gotBytes) {
        // Nothing sent at all (Apache after answering 411 itself): a quiet close.
        this.phase = CLOSED;
        this.socket.destroy();
      } else {
        this.#reject(new ScgiError('ERR_SCGI_INCOMPLETE_HEADER', 'the front closed before the SCGI header was complete'));
      }
    } else if (this.phase === BODY && this.#bodyLeft > 0) {
      const err = new ScgiError(
        'ERR_SCGI_BODY_TRUNCATED',
        `the front closed after ${this.#client!.headers.contentLength - this.#bodyLeft} of ${this.#client!.headers.contentLength} body bytes`,
      );
      this.#bodyLeft = 0;
      this.#client!.destroy(err);
      this.socket.destroy();
    }
    else if (this.phase === BODY && !this.#host.options.allowHalfOpen) {
      // No front half-closes after its request (nginx, Apache, lighttpd): a FIN
      // before our response ends means the browser went away and the front
      // closed the connection. The client emits 'close' (the fetch adapter
      // aborts its signal).
      this.phase = CLOSED;
      this.#client!.destroy();
      this.socket.destroy();
    }
    // BODY with allowHalfOpen: the peer half-closed after its request; we still answer.
    // DRAIN: we ended our side already, so the socket closes itself now.
  }

  /** The deadline passed. */
  timeout(): void {
    const host = this.#host;
    if (this.phase === HEADER) {
      host.stats.timeouts++;
      this.#reject(new ScgiError('ERR_SCGI_HEADER_TIMEOUT', 'no complete SCGI header within headerTimeout'));
      host.stats.rejected--; // counted as a timeout, not as bad input
    } else if (this.phase === BODY) {
      host.stats.timeouts++;
      const err = new ScgiError('ERR_SCGI_REQUEST_TIMEOUT', 'the handler did not finish within requestTimeout');
      try {
        host.options.onError(err, this.#client);
      } catch {
        // ignore
      }
      this.#abort();
      this.#client?.destroy(err);
    } else {
      this.socket.destroy();
    }
  }

  clientDestroyed(_err: Error | null): void {
    // The handler destroyed its stream without ending the response: the
    // response is incomplete.
    if (!this.#responded && this.phase !== CLOSED) this.#abort();
  }

  closed(): void {
    this.phase = CLOSED;
    this.deadline = 0;
    const client = this.#client;
    if (client !== null && !client.destroyed) client.destroy();
    this.#bytes.reset();
    this.#host.released(this);
  }

  /** For graceful close: is a request in progress? */
  get busy(): boolean {
    return this.phase === BODY;
  }
}
