/**
 * One connection's request lifecycle, from the first byte to close:
 *
 *   HEADER → BODY → DRAIN → CLOSED
 *
 * `HEADER`: read the netstring (`HeaderReader`). `BODY`: the handler runs;
 * exactly CONTENT_LENGTH body bytes go to its `ScgiClient`, with
 * backpressure by pausing the transport. `DRAIN`: the response ended (or was
 * refused); our side is half-closed and whatever the front still sends is
 * read and discarded until it closes, `drainTimeout` or `maxDrainSize`.
 * `CLOSED`: gone.
 *
 * It talks to the connection only through a `Transport`
 * (`src/transport/types.ts`), and receives its events (`onData`, `onFin`,
 * `onDrain`, `onClose`; `onDeadline` from the server's sweep). It counts
 * nothing itself: every outcome goes to `host.record`, the server's one place
 * for `stats` and `'clientError'`.
 *
 * Hot-path rules: no closures or timers per connection (the server runs one
 * deadline sweep), a response head and its first body chunk go out in one
 * corked write (`ScgiClient`).
 */
import { headerTimeoutError, incompleteHeaderError, ScgiError } from '../errors.ts';
import { HeaderReader, type HeaderParse } from '../protocol/header-reader.ts';
import { errorFromParse, headersFromParse, ownHeaderBytes, type ScgiHeaders } from '../protocol/scgi-headers.ts';
import type { LifecycleOptions } from '../options.ts';
import type { Monitor } from '../status/monitor.ts';
import { OUT_HEADER_END, Status } from '../parser/types.ts';
import { refusalResponse, type Refusal } from '../protocol/response.ts';
import { answerInternalError, isClientDestroyed, ownUnreadBody, ScgiClient, type ClientPort, type Handler } from './scgi-client.ts';
import type { Transport, TransportEvents, TransportSocket } from '../transport/types.ts';
import type { ScgiStats } from '../types.ts';

/** The phases, in order. */
export const Phase = {
  /** Waiting for the netstring. An idle connection: no request in progress. */
  HEADER: 0,
  /** The handler is running: a request in progress. */
  BODY: 1,
  /** The response is finished (or refused); the rest of what the front sends is discarded. */
  DRAIN: 2,
  CLOSED: 3,
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

/** The server, as its connections see it. */
export interface LifecycleHost {
  readonly handler: Handler;
  readonly options: LifecycleOptions;
  /** The parser and limits (its `out` is shared by all connections). */
  readonly headerParse: HeaderParse;
  /**
   * The one place where outcomes are counted: `stats[kind]++`, and with an
   * `err`, a `'clientError'` event with `socket`. A transport that refuses
   * or times out connections itself reports here too.
   */
  record(kind: keyof ScgiStats, err?: ScgiError, socket?: TransportSocket): void;
  /** The connection is gone. */
  released(conn: Lifecycle): void;
  /** The request monitor (status, access log, slow requests: src/status/monitor.ts), or null: off. */
  readonly monitor: Monitor | null;
}

/**
 * Nothing in the headers says the front sends more than CONTENT_LENGTH
 * bytes. nginx with `scgi_request_buffering off` puts the bytes it read
 * ahead in CONTENT_LENGTH and streams the rest of the body after them; its
 * HTTP_CONTENT_LENGTH (the client's Content-Length) then differs
 * (test/fixtures/nginx-unbuf-post100k.bin). A body in transfer coding
 * (HTTP_TRANSFER_ENCODING) has no length to compare.
 */
function sendsNoMore(h: ScgiHeaders): boolean {
  if (h.indexOf('HTTP_TRANSFER_ENCODING') !== -1) return false;
  const i = h.indexOf('HTTP_CONTENT_LENGTH');
  return i === -1 || Number(h.value(i)) === h.contentLength;
}

export class Lifecycle implements TransportEvents, ClientPort {
  /** The connection (the monitor puts its observer in front of it when a request starts: `startRequest`). */
  transport: Transport;
  readonly #host: LifecycleHost;
  #phase: Phase = Phase.HEADER;
  /** When the current phase times out (ms since epoch); 0 = never. Read by the server's sweep. */
  deadline = 0;
  /** When the handler was called (ms since epoch); 0 before. Read by the worker heartbeat (src/supervision/heartbeat.ts). */
  requestStart = 0;
  /** Made by the first header bytes (a transport that parses headers itself never needs one). */
  #reader: HeaderReader | null = null;
  /** Any byte received (an empty connection is a quiet close). */
  #gotBytes = false;
  #client: ScgiClient | null = null;
  #bodyLeft = 0;
  #discarded = 0;
  #responded = false;
  /** The response ended but is not all written yet (`Transport.end` returned false): no drain clock yet. */
  #writing = false;
  #eofPushed = false;
  #drainCallback: ((err?: Error | null) => void) | null = null;
  /**
   * The body is being received and `bodyTimeout` is on: the server's sweep
   * calls `onBodyTick` (read by the sweep; no timer per connection).
   */
  bodyWatch = false;
  /** We paused the transport because the handler's body stream is full: that wait is not the front's. */
  #paused = false;
  /** ms spent waiting for body bytes in the current `bodyTimeout` window, and `bodyLeft` when it began. */
  #bodyClock = 0;
  #bodyMark = 0;
  /** The error this lifecycle reported and destroyed the client with: a handler rethrowing it is not a second failure. */
  #reported: Error | null = null;

  constructor(transport: Transport, host: LifecycleHost, now: number) {
    this.transport = transport;
    this.#host = host;
    const t = host.options.headerTimeout;
    if (t > 0) this.deadline = now + t;
    transport.attach(this);
  }

  /** Where the connection is: `Phase.HEADER` (idle), `BODY` (a request in progress), `DRAIN`, `CLOSED`. */
  get phase(): Phase {
    return this.#phase;
  }

  /** The handler's client (null before the request starts). */
  get client(): ScgiClient | null {
    return this.#client;
  }

  /** Refuse this connection with a whole response (503 when over maxConnections, 413 over maxBodySize). */
  refuse(status: Refusal, now: number): void {
    this.#startDrain();
    this.#written(this.transport.end(refusalResponse(status), 'latin1'), now);
  }

  /** Close now (the server's close after shutdownTimeout). */
  destroy(): void {
    this.transport.destroy();
  }

  /**
   * The body watch, once per sweep tick (`elapsed` ms since the last): while
   * the body is awaited (not paused by us), the window's clock runs; when it
   * reaches `bodyTimeout`, the window must have brought at least one byte and
   * `minBodyRate` bytes/s, else the connection is closed. A slow body from a
   * slow front (1 byte/s) cannot hold a connection for long; an honest slow
   * upload, or a handler that reads late, is not cut.
   */
  onBodyTick(elapsed: number): void {
    if (this.#bodyLeft === 0 || this.#phase !== Phase.BODY) {
      this.bodyWatch = false;
      return;
    }
    if (this.#paused) return;
    const o = this.#host.options;
    const clock = (this.#bodyClock += elapsed);
    if (clock < o.bodyTimeout) return;
    const got = this.#bodyMark - this.#bodyLeft;
    if (got > 0 && got * 1000 >= o.minBodyRate * clock) {
      this.#bodyMark = this.#bodyLeft;
      this.#bodyClock = 0;
      return;
    }
    this.bodyWatch = false;
    const err = new ScgiError(
      'ERR_SCGI_BODY_TIMEOUT',
      got === 0
        ? `no request body byte within bodyTimeout (${o.bodyTimeout} ms)`
        : `the request body came at ${Math.round((got * 1000) / clock)} bytes/s, under minBodyRate (${o.minBodyRate})`,
    );
    this.#reported = err;
    this.#host.record('timeouts', err, this.transport.socket);
    this.#phase = Phase.CLOSED;
    this.transport.reset();
    this.#client?.destroy(err);
  }

  /**
   * Let go of views into a transport's shared buffer
   * (`NativeConnections.onBatchEnd`): copy the headers' bytes, and the body
   * bytes the handler has not started reading, while the handler runs or its
   * response is still being written. A request already answered (the usual
   * case by then) copies nothing.
   */
  ownBytes(): void {
    const client = this.#client;
    if (client !== null && (this.#phase === Phase.BODY || (this.#writing && this.#phase === Phase.DRAIN))) {
      ownHeaderBytes(client.headers);
      ownUnreadBody(client);
    }
  }

  // ---- transport events ----

  onData(chunk: Buffer): void {
    const phase = this.#phase;
    if (phase === Phase.BODY) {
      this.#feedBody(chunk);
    } else if (phase === Phase.HEADER) {
      this.#gotBytes = true;
      this.#readHeader(chunk);
    } else if (phase === Phase.DRAIN) {
      this.#discard(chunk.length);
    }
  }

  /** The front half-closed (FIN). */
  onFin(): void {
    const phase = this.#phase;
    if (phase === Phase.HEADER) {
      if (!this.#gotBytes) {
        // Nothing sent at all (Apache after answering 411 itself): a quiet close.
        this.#phase = Phase.CLOSED;
        this.transport.destroy();
      } else {
        this.#reject('rejected', incompleteHeaderError());
      }
    } else if (phase === Phase.BODY && this.#bodyLeft > 0) {
      const client = this.#client!;
      const length = client.headers.contentLength;
      const err = new ScgiError('ERR_SCGI_BODY_TRUNCATED', `the front closed after ${length - this.#bodyLeft} of ${length} body bytes`);
      this.#bodyLeft = 0;
      client.destroy(err);
      this.transport.destroy();
    } else if (phase === Phase.BODY && !this.#host.options.allowHalfOpen) {
      // No front half-closes after its request (nginx, Apache, lighttpd): a FIN
      // before our response ends means the browser went away and the front
      // closed the connection. The client emits 'close' (the fetch adapter
      // aborts its signal).
      this.#phase = Phase.CLOSED;
      this.#client!.destroy();
      this.transport.destroy();
    }
    // BODY with allowHalfOpen: the peer half-closed after its request; we still answer.
    // DRAIN: we ended our side already, so the connection closes itself now.
  }

  onDrain(): void {
    const cb = this.#drainCallback;
    this.#drainCallback = null;
    if (cb !== null) cb();
  }

  onFinish(): void {
    if (this.#writing && this.#phase === Phase.DRAIN) this.#written(true, Date.now());
  }

  onClose(): void {
    this.#phase = Phase.CLOSED;
    this.deadline = 0;
    const client = this.#client;
    if (client !== null) client.destroy(); // a no-op when it already is
    this.#reader = null;
    this.#host.released(this);
  }

  /** The deadline passed (called by the server's sweep). */
  onDeadline(): void {
    const phase = this.#phase;
    if (phase === Phase.HEADER) {
      this.#reject('timeouts', headerTimeoutError(this.#host.options.headerTimeout));
    } else if (phase === Phase.BODY) {
      const err = this.#requestTimeout('the handler did not finish within requestTimeout');
      this.transport.reset();
      this.#client?.destroy(err);
    } else if (phase === Phase.DRAIN && this.#writing) {
      // The response is ended but the front has not taken it all by
      // requestTimeout: it is cut, and that is counted and reported.
      this.#writing = false;
      this.#requestTimeout('the response was not all written within requestTimeout');
      this.#phase = Phase.CLOSED;
      this.transport.reset();
    } else {
      this.transport.destroy();
    }
  }

  /** requestTimeout passed: counted, reported to onError once (`#reported`). */
  #requestTimeout(message: string): ScgiError {
    this.#host.record('timeouts');
    const err = new ScgiError('ERR_SCGI_REQUEST_TIMEOUT', message);
    this.#reported = err;
    try {
      this.#host.options.onError(err, this.#client);
    } catch {
      // an onError that throws must not take the server down
    }
    return err;
  }

  // ---- the header ----

  #readHeader(chunk: Buffer): void {
    const cfg = this.#host.headerParse;
    const reader = (this.#reader ??= new HeaderReader());
    const status = reader.push(chunk, cfg);
    if (status === Status.Partial) return;
    this.#reader = null;
    if (status === Status.Error) this.#reject('rejected', errorFromParse(cfg.out));
    else this.startRequest(reader.buffer!, cfg.out, 0, false, Date.now());
  }

  /**
   * Enter the request with a parsed header: `buf` holds the header (up to
   * `out[at + OUT_HEADER_END]`) and the body bytes that came with it; `out`
   * from `at` on is as the parser filled it. `keep`: `out` is never written
   * again, so the headers read their offsets in place (else they are
   * copied). A transport that parses headers itself calls this right after
   * constructing the lifecycle, instead of sending the header bytes through
   * `onData`.
   */
  startRequest(buf: Buffer, out: Uint32Array, at: number, keep: boolean, now: number): void {
    const host = this.#host;
    const opts = host.options;
    this.#gotBytes = true;
    this.#reader = null;
    const headerEnd = out[at + OUT_HEADER_END]!;
    const headers = headersFromParse(buf, out, at, keep, opts.headerEncoding);
    if (host.monitor !== null) this.transport = host.monitor.begin(this, headers, this.transport);
    const contentLength = headers.contentLength;
    if (contentLength > opts.maxBodySize) {
      host.record(
        'rejected',
        new ScgiError('ERR_SCGI_BODY_TOO_LARGE', `CONTENT_LENGTH ${contentLength} exceeds maxBodySize ${opts.maxBodySize}`),
        this.transport.socket,
      );
      this.#bodyLeft = contentLength;
      this.refuse(413, now);
      if (headerEnd < buf.length) this.#discard(buf.length - headerEnd);
      return;
    }
    this.#phase = Phase.BODY;
    this.requestStart = now;
    this.deadline = opts.requestTimeout > 0 ? now + opts.requestTimeout : 0;
    this.#bodyLeft = contentLength;
    this.#bodyMark = contentLength;
    this.bodyWatch = contentLength > 0 && opts.bodyTimeout > 0;
    const client = new ScgiClient(this, headers);
    this.#client = client;
    // An empty body's EOF is pushed when someone reads (readBody): a handler
    // that never reads costs no stream end machinery.
    if (headerEnd < buf.length) this.#feedBody(buf.subarray(headerEnd));
    host.record('requests');
    this.#call(client, headers);
  }

  #call(client: ScgiClient, headers: ScgiHeaders): void {
    let result: unknown;
    try {
      result = this.#host.handler(headers, client);
    } catch (err) {
      this.#handlerError(err, client);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(undefined, (err: unknown) => this.#handlerError(err, client));
    }
  }

  /** A handler threw or rejected. */
  #handlerError(err: unknown, client: ScgiClient): void {
    // The handler let go the timeout its body stream failed with: already counted and reported.
    if (err === this.#reported) return;
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
    host.record('errors');
    const error = err instanceof Error ? err : new ScgiError('ERR_SCGI_HANDLER', `handler failed with ${String(err)}`);
    try {
      host.options.onError(error, client);
    } catch {
      // an onError that throws must not take the server down
    }
    if (this.#phase === Phase.CLOSED || isClientDestroyed(client)) return;
    // Part of a response is out: the front must see it is incomplete.
    if (!answerInternalError(client)) this.transport.reset();
  }

  // ---- the body ----

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
    } else if (!more) {
      this.#paused = true;
      this.transport.pause();
    }
  }

  // ---- ClientPort: what the handler's stream asks ----

  readBody(): void {
    if (this.#bodyLeft > 0) {
      if (this.#phase === Phase.BODY) {
        this.#paused = false;
        this.transport.resume();
      }
    } else if (!this.#eofPushed) {
      this.#eofPushed = true;
      this.#client!.push(null);
    }
  }

  awaitDrain(callback: (err?: Error | null) => void): void {
    this.#drainCallback = callback;
  }

  finishResponse(last?: string | Uint8Array | null, encoding?: BufferEncoding): void {
    if (this.#responded) return;
    this.#responded = true;
    const client = this.#client;
    // The whole request was read, nothing past it came, and nothing says the
    // front sends more: the connection closes once the response is out
    // instead of waiting in DRAIN for the front's close. Otherwise (an unread
    // body the front may still be sending) DRAIN reads and discards it:
    // closing on bytes still to come makes the kernel answer with a reset,
    // and nginx and Apache then truncate the response
    // (test/drain-after-response.test.ts).
    const consumed = this.#bodyLeft === 0 && this.#discarded === 0 && client !== null && sendsNoMore(client.headers);
    if (client !== null && this.#bodyLeft > 0) {
      // The handler answered without reading all the body: it gives up the rest.
      this.#bodyLeft = 0;
      this.#eofPushed = true;
      client.push(null);
    }
    this.#startDrain();
    this.#written(this.transport.end(last, encoding, consumed), Date.now());
  }

  onClientDestroy(err: Error | null): void {
    const cb = this.#drainCallback;
    this.#drainCallback = null;
    if (cb !== null) cb(err ?? new ScgiError('ERR_SCGI_CONNECTION_CLOSED', 'the client stream was destroyed before its write drained'));
    // Destroyed without ending the response: the response is incomplete.
    if (!this.#responded && this.#phase !== Phase.CLOSED) this.transport.reset();
  }

  // ---- drain and close ----

  #startDrain(): void {
    this.#phase = Phase.DRAIN;
    // Keep reading: closing with unread bytes makes the kernel send RST, and
    // nginx and Apache then truncate the response.
    this.transport.resume();
  }

  /**
   * `done`: the response is all written. Only then does the drain clock
   * start; until then the request's deadline stays (a response still being
   * written is governed by backpressure and requestTimeout).
   */
  #written(done: boolean, now: number): void {
    if (!done) {
      this.#writing = true;
      return;
    }
    this.#writing = false;
    if (this.#phase !== Phase.DRAIN) return;
    if (this.#discarded > this.#host.options.maxDrainSize) {
      this.transport.destroy();
      return;
    }
    const t = this.#host.options.drainTimeout;
    this.deadline = t > 0 ? now + t : 0;
  }

  /**
   * Bytes past the body are counted; `maxDrainSize` applies once the
   * response is out (as the engine's `finish` does): before, the handler
   * may still answer.
   */
  #discard(n: number): void {
    this.#discarded += n;
    if (this.#phase === Phase.DRAIN && !this.#writing && this.#discarded > this.#host.options.maxDrainSize) this.transport.destroy();
  }

  /** Bad input or a header timeout: counted as `kind`, reported, closed. */
  #reject(kind: 'rejected' | 'timeouts', err: ScgiError): void {
    this.#phase = Phase.CLOSED;
    this.#host.record(kind, err, this.transport.socket);
    this.transport.destroy();
  }
}
