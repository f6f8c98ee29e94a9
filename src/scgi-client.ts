/**
 * `ScgiClient`, the handler's stream to the front: the request body in, the
 * response out. It reaches its connection's lifecycle (`src/lifecycle.ts`)
 * only through `ClientPort`, and writes through the connection's
 * `Transport` (`src/transport/types.ts`).
 */
import { Duplex } from 'node:stream';
import { ScgiError } from './errors.ts';
import type { ScgiHeaders } from './headers.ts';
import { buildHead, type OutgoingHeaders } from './response.ts';
import type { Transport, TransportSocket } from './transport/types.ts';

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

/**
 * After a handler error: answer `Status: 500` if no response byte went out
 * (an unsent `writeHead` is discarded). Returns false when part of the
 * response is already out (the caller must then reset the connection).
 */
export function answerInternalError(client: ScgiClient): boolean {
  if (client.writableEnded) return true;
  if (client.headersSent) return false;
  discardHead(client);
  client.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
  client.end('Internal Server Error\n');
  return true;
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

  static {
    discardHead = (client) => {
      client.#head = null;
      client.#headHasLength = false;
      client.#bodyStarted = false;
    };
  }

  constructor(port: ClientPort, headers: ScgiHeaders) {
    // No options object: the defaults (allowHalfOpen, decodeStrings, emitClose,
    // autoDestroy all true) are what we want, and parsing options costs ~0.25 µs.
    super();
    this.#port = port;
    this.#transport = port.transport;
    this.headers = headers;
    this.socket = port.transport.socket;
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
      const transport = this.#transport;
      if (transport.writable) {
        this.#started = true;
        const head = this.#head;
        this.#head = null;
        const body = chunk == null || (chunk as { length: number }).length === 0 ? null : (chunk as string | Uint8Array);
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
          transport.cork();
          transport.write(head + '\r\n', 'latin1');
          transport.write(body, enc);
          this.#port.finishResponse(); // end() flushes the cork, then FIN
        }
        return super.end(cb as never);
      }
    }
    return super.end(chunk as never, encoding as never, cb as never);
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
    transport.cork();
    for (let i = 0; i < chunks.length - 1; i++) this.#send(chunks[i]!.chunk, null);
    this.#send(chunks[chunks.length - 1]!.chunk, callback);
    transport.uncork();
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.#head !== null) this.#send(null, null);
    this.#port.finishResponse();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#port.onClientDestroy(err);
    callback(err);
  }

  /** Write `chunk` (with the pending head, if any) to the transport. */
  #send(chunk: Buffer | null, callback: ((err?: Error | null) => void) | null): void {
    const transport = this.#transport;
    if (!transport.writable) {
      if (callback !== null) callback(new ScgiError('ERR_SCGI_CONNECTION_CLOSED', 'the front closed the connection'));
      return;
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
        transport.uncork();
      }
    } else {
      if (chunk === null) return;
      ok = transport.write(chunk);
    }
    if (callback === null) return;
    if (ok) callback();
    else this.#port.awaitDrain(callback);
  }
}
