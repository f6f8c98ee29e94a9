/**
 * `ScgiClient`, the handler's stream to the front: the request body in, the
 * response out. It reaches its connection's lifecycle (`src/connection/lifecycle.ts`)
 * only through `ClientPort`, and writes through the connection's
 * `Transport` (`src/transport/types.ts`).
 *
 * It is a `Duplex` whose stream state is made on first use. A handler that
 * answers the common way (`writeHead` + `end(body)`, or `end(rawResponse)`)
 * never builds it: the response goes to the transport in one call, body
 * bytes the handler never reads wait in a list, and the lifecycle's
 * `destroy` is a flag. The first touch of anything else (a listener, a
 * read, `write`, `pipe`, a stream property) builds the Duplex state
 * (`Duplex.call`) and replays what happened before: body bytes pushed, the
 * end of the response, a destroy. Every stream method and property reaches
 * `_readableState` or `_writableState`, and those are accessors on this
 * prototype that build the state before answering.
 */
import { Duplex, getDefaultHighWaterMark } from 'node:stream';
import { ScgiError } from '../errors.ts';
import type { ScgiHeaders } from '../protocol/scgi-headers.ts';
import { buildHead, type OutgoingHeaders } from '../protocol/response.ts';
import type { Transport, TransportSocket } from '../transport/types.ts';

/** What a request handler gets: the headers, and the connection to the front. */
export type Handler = (headers: ScgiHeaders, client: ScgiClient) => unknown;

/** What the handler's stream asks of its connection's lifecycle. */
export interface ClientPort {
  /** Where the response goes. */
  readonly transport: Transport;
  /** The handler reads: let more body bytes come (or the EOF). */
  readBody(): void;
  /** The response is complete: write `last` (if any), then FIN. */
  finishResponse(last?: string | Uint8Array | null, encoding?: BufferEncoding): void;
  /** A write returned false: call `callback` when the transport drains (or with an error if the client is destroyed first). */
  awaitDrain(callback: (err?: Error | null) => void): void;
  /** The handler's stream was destroyed (by the handler, or by the lifecycle). */
  onClientDestroy(err: Error | null): void;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range, \x00 included, on purpose
const NON_ASCII = /[^\x00-\x7f]/;

function onClientError(this: ScgiClient, _err: Error): void {
  // The handler sees stream errors through its reads and writes; this listener
  // only keeps an unobserved one from crashing the process.
}

let discardHead: (client: ScgiClient) => void;
let responseEnded: (client: ScgiClient) => boolean;
let destroyedOrGone: (client: ScgiClient) => boolean;
let askMore: (client: ScgiClient) => void;
let ownBody: (client: ScgiClient) => void;

/**
 * Body chunks still waiting for the handler's first read (the stream state
 * is not built yet) become copies: a request that outlives the native
 * transport's batch keeps only its own bytes (`Lifecycle.ownBytes`).
 */
export function ownUnreadBody(client: ScgiClient): void {
  ownBody(client);
}

/** The client is destroyed (by the handler or its connection), without building its stream state. */
export function isClientDestroyed(client: ScgiClient): boolean {
  return destroyedOrGone(client);
}

/**
 * After a handler error: answer `Status: 500` if no response byte went out
 * (an unsent `writeHead` is discarded). Returns false when part of the
 * response is already out (the caller must then reset the connection).
 */
export function answerInternalError(client: ScgiClient): boolean {
  if (responseEnded(client)) return true;
  if (client.headersSent) return false;
  discardHead(client);
  client.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
  client.end('Internal Server Error\n');
  return true;
}

/**
 * A listener was added without building the state (`prependListener`, or
 * `EventEmitter.prototype.on` called directly): events are then due, so the
 * state is built before anything happens.
 */
function hasListeners(client: ScgiClient): boolean {
  return (client as unknown as { _events?: object })._events !== undefined;
}

/** Readable's default high-water mark: what the body list holds before the lifecycle pauses the transport. */
const BODY_HIGH_WATER = getDefaultHighWaterMark(false);

/**
 * The base of `ScgiClient`: `Duplex.prototype` without running `Duplex`'s
 * constructor (the client runs it on first use, `#build`).
 */
function DeferredDuplex(): void {}
DeferredDuplex.prototype = Object.create(Duplex.prototype, {
  constructor: { value: DeferredDuplex, writable: true, configurable: true },
});

/**
 * The handler's connection to the front. Readable side: exactly
 * CONTENT_LENGTH body bytes, then EOF. Writable side: the response, raw bytes
 * (a CGI response: `Status: 200 OK\r\n...\r\n\r\nbody`) or through
 * `writeHead`. `for await (const chunk of client)` does not end the writable
 * side.
 */
export class ScgiClient extends (DeferredDuplex as unknown as typeof Duplex) {
  /** The request headers (the handler's first argument). */
  readonly headers: ScgiHeaders;
  /**
   * The connection's socket: the `net.Socket` when a `net.Server` accepted
   * the connection (narrow with `instanceof net.Socket` for socket options);
   * another transport provides at least a `TransportSocket`.
   */
  readonly socket: TransportSocket;
  readonly #port: ClientPort;
  readonly #transport: Transport;
  #head: string | null = null;
  #headHasLength = false;
  #headAscii = true;
  #bodyStarted = false;
  #started = false;
  /** The Duplex state exists (`#build` ran, or is running). */
  #built = false;
  /** Before `#build`: body chunks pushed by the lifecycle, their bytes, and the EOF. */
  #body: Buffer[] | null = null;
  #bodyBytes = 0;
  #eof = false;
  /** Before `#build`: `end` sent the whole response. */
  #ended = false;
  /** Before `#build`: destroyed (by the handler, or by the lifecycle when the connection went), and with what. */
  #gone = false;
  #goneError: Error | null = null;
  /** `port.onClientDestroy` was called. */
  #reported = false;
  /** Before `#build`: a read-ahead (`askMore`) is due. */
  #askedMore = false;

  static {
    discardHead = (client) => {
      client.#head = null;
      client.#headHasLength = false;
      client.#bodyStarted = false;
    };
    responseEnded = (client) => (client.#built ? client.writableEnded : client.#ended);
    askMore = (client) => {
      client.#askedMore = false;
      if (!client.#built && !client.#eof && !client.#gone && client.#bodyBytes < BODY_HIGH_WATER) client.#port.readBody();
    };
    destroyedOrGone = (client) => (client.#built ? client.destroyed : client.#gone);
    ownBody = (client) => {
      const body = client.#body;
      if (client.#built || body === null) return;
      for (let i = 0; i < body.length; i++) body[i] = Buffer.from(body[i]!);
    };
  }

  constructor(port: ClientPort, headers: ScgiHeaders) {
    super();
    this.#port = port;
    this.#transport = port.transport;
    this.headers = headers;
    this.socket = port.transport.socket;
  }

  /** Build the Duplex state, then replay what happened before it existed. */
  #build(): void {
    if (this.#built) return;
    this.#built = true;
    // No options object: the defaults (allowHalfOpen, decodeStrings, emitClose,
    // autoDestroy all true) are what we want, and parsing options costs ~0.25 µs.
    // Listeners added before (prependListener) are kept: `_events` is only
    // made when missing.
    Duplex.call(this);
    this.on('error', onClientError);
    const body = this.#body;
    this.#body = null;
    // `#ended`: the whole response went out before the state existed, so the
    // handler never read; the body ends there (the lifecycle pushed the EOF
    // already unless there was no body left to come). When the connection is
    // gone too, the unread bytes are dropped (destroy would drop them): the
    // readable side is then ended and empty, and finished(client) reports the
    // complete response as a success.
    if (body !== null && !(this.#ended && this.#gone)) for (const chunk of body) super.push(chunk);
    if (this.#eof || this.#ended) super.push(null);
    if (this.#ended) super.end();
    if (this.#gone) super.destroy(this.#goneError ?? undefined);
  }

  // Every Readable/Writable method and property goes through these two: the
  // first use builds the state. (While `Duplex.call` runs they are being set.)
  /** @internal */
  get _readableState(): unknown {
    if (this.#built) return undefined;
    this.#build();
    return (this as unknown as { _readableState: unknown })._readableState;
  }
  /** @internal */
  set _readableState(state: unknown) {
    Object.defineProperty(this, '_readableState', { value: state, writable: true, configurable: true, enumerable: true });
  }
  /** @internal */
  get _writableState(): unknown {
    if (this.#built) return undefined;
    this.#build();
    return (this as unknown as { _writableState: unknown })._writableState;
  }
  /** @internal */
  set _writableState(state: unknown) {
    Object.defineProperty(this, '_writableState', { value: state, writable: true, configurable: true, enumerable: true });
  }

  /**
   * Body bytes from the lifecycle (`null`: the end). Until the state is
   * built they wait in a list; false once it holds the high-water mark
   * (the lifecycle then pauses the transport until a read asks for more).
   */
  override push(chunk: Buffer | null, encoding?: BufferEncoding): boolean {
    if (this.#built) return super.push(chunk, encoding);
    if (chunk === null) {
      this.#eof = true;
      return false;
    }
    (this.#body ??= []).push(chunk);
    this.#bodyBytes += chunk.length;
    const more = this.#bodyBytes < BODY_HIGH_WATER;
    // As a Readable reads ahead up to its high-water mark (without a reader),
    // so that a front's FIN or a body timeout is seen while nobody reads.
    if (more && !this.#askedMore) {
      this.#askedMore = true;
      process.nextTick(askMore, this);
    }
    return more;
  }

  override destroy(error?: Error): this {
    if (this.#built || hasListeners(this)) return super.destroy(error);
    if (this.#gone) return this;
    this.#gone = true;
    this.#goneError = error ?? null;
    this.#report(error ?? null);
    return this;
  }

  #report(err: Error | null): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#port.onClientDestroy(err);
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
    if (!this.#built) {
      // A whole response before anything else touched the stream: straight
      // to the transport, without stream state. A callback, a chunk that is
      // not a string or bytes, a second end, or a closed connection builds
      // the state and takes the Writable's way (the same errors as ever).
      if (
        cb == null &&
        !hasListeners(this) &&
        !this.#ended &&
        !this.#gone &&
        this.#transport.writable &&
        (chunk == null || typeof chunk === 'string' || chunk instanceof Uint8Array)
      ) {
        this.#ended = true;
        this.#addLength(chunk, enc);
        this.#sendWhole(chunk, enc);
        return this;
      }
      this.#build();
    }
    if (!this.writableEnded) this.#addLength(chunk, enc);
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
      if (this.#transport.writable) {
        this.#sendWhole(chunk as string | Uint8Array | null | undefined, enc);
        return super.end(cb as never);
      }
    }
    return super.end(chunk as never, encoding as never, cb as never);
  }

  /** `end(body)` after `writeHead` without Content-Length, nothing written before: the length is the body's. */
  #addLength(chunk: unknown, enc: BufferEncoding): void {
    if (this.#head === null || this.#bodyStarted || this.#headHasLength) return;
    let length = 0;
    if (typeof chunk === 'string') length = Buffer.byteLength(chunk, enc);
    else if (chunk instanceof Uint8Array) length = chunk.byteLength;
    this.#head += `Content-Length: ${length}\r\n`;
    this.#headHasLength = true;
  }

  override [Symbol.asyncIterator](): NodeJS.AsyncIterator<Buffer> {
    // Node's default iterator destroys the stream when the loop ends, which
    // would kill the writable side before the handler answers.
    return this.iterator({ destroyOnReturn: false });
  }

  override _read(): void {
    this.#port.readBody();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#send(chunk, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    const transport = this.#transport;
    if (!transport.writable) {
      callback(new ScgiError('ERR_SCGI_CONNECTION_CLOSED', 'the front closed the connection'));
      return;
    }
    transport.cork();
    let ok = true;
    for (let i = 0; i < chunks.length; i++) ok = this.#send(chunks[i]!.chunk, null) && ok;
    // The corked bytes go out here: what the transport then holds decides.
    if (transport.uncork() && ok) callback();
    else this.#port.awaitDrain(callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.#head !== null) this.#send(null, null);
    this.#port.finishResponse();
    // The response is complete and the handler never read the body: it is
    // given up (finishResponse ended it), and dumped as node:http dumps a
    // request body nobody read, so the readable side emits 'end' before
    // 'close' and stream.finished(client) reports success. (Only a handler
    // that watches the stream gets here: _final needs the built state.)
    if (!this.readableDidRead && !this.readableEnded) this.resume();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#report(err);
    callback(err);
  }

  /**
   * The whole response: the pending head (Content-Length already added) and
   * `chunk`, to the transport in one call where possible, then the end.
   */
  #sendWhole(chunk: string | Uint8Array | null | undefined, enc: BufferEncoding): void {
    this.#started = true;
    const head = this.#head;
    this.#head = null;
    const body = chunk == null || chunk.length === 0 ? null : chunk;
    if (head === null) {
      this.#port.finishResponse(body, enc);
    } else if (body === null) {
      this.#port.finishResponse(head + '\r\n', 'latin1');
    } else if (typeof body === 'string' && (enc === 'latin1' || ((enc === 'utf8' || enc === 'utf-8') && this.#headAscii))) {
      // One string, one write syscall (writev of a head and a body costs twice as much).
      this.#port.finishResponse(head + '\r\n' + body, enc);
    } else if (typeof body !== 'string' && body.byteLength <= 65536) {
      const out = Buffer.allocUnsafe(head.length + 2 + body.byteLength);
      out.write(head + '\r\n', 0, 'latin1');
      out.set(body, head.length + 2);
      this.#port.finishResponse(out);
    } else {
      const transport = this.#transport;
      transport.cork();
      transport.write(head + '\r\n', 'latin1');
      transport.write(body, enc);
      this.#port.finishResponse(); // end() flushes the cork, then FIN
    }
  }

  /**
   * Write `chunk` (with the pending head, if any) to the transport; then
   * `callback` once the transport can take more. Returns whether it can now.
   */
  #send(chunk: Buffer | null, callback: ((err?: Error | null) => void) | null): boolean {
    const transport = this.#transport;
    if (!transport.writable) {
      if (callback !== null) callback(new ScgiError('ERR_SCGI_CONNECTION_CLOSED', 'the front closed the connection'));
      return true;
    }
    this.#started = true;
    let ok: boolean;
    const head = this.#head;
    if (head !== null) {
      this.#head = null;
      if (chunk === null || chunk.length === 0) {
        ok = transport.write(head + '\r\n', 'latin1');
      } else {
        transport.cork();
        transport.write(head + '\r\n', 'latin1');
        ok = transport.write(chunk);
        ok = transport.uncork() && ok;
      }
    } else {
      if (chunk === null) return true;
      ok = transport.write(chunk);
    }
    if (callback === null) return ok;
    if (ok) callback();
    else this.#port.awaitDrain(callback);
    return ok;
  }
}
