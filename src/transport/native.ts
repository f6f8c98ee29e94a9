/**
 * The native transport (Linux, the addon's engine in
 * `crates/scgi-napi/src/transport/`, bound by `native-engine.ts`): the addon
 * owns the listening socket and its connections, reads and validates each
 * header natively, and hands ready requests over in batches. Each request
 * becomes a `NativeTransport` (this file's `Transport`) and a `Lifecycle`
 * entered through `startRequest`; everything after that (body stream,
 * response, handler errors, requestTimeout, drain) is the same lifecycle as
 * on the net transport. What the engine refuses or times out before a
 * request exists is reported to the server's `record` (`NativeHost`).
 *
 * Differences from the net transport that a user can see are listed in
 * docs/ARCHITECTURE.md ("The native transport").
 */
import { headerTimeoutError, incompleteHeaderError, type ScgiError } from '../errors.ts';
import type { Lifecycle } from '../connection/lifecycle.ts';
import { sweepTick, type LifecycleOptions } from '../options.ts';
import { errorOfParseCode } from '../protocol/scgi-headers.ts';
import { refusalResponse } from '../protocol/response.ts';
import type { ScgiStats } from '../types.ts';
import {
  CLOSE_ABORTED,
  CLOSE_BODY_TRUNCATED,
  NativeEngine,
  R_CLOSED,
  R_FULL,
  REJECT_HEADER_TIMEOUT,
  REJECT_INCOMPLETE_HEADER,
  transportAddon,
  nativeTransportError,
  type NativeEngineEvents,
} from './native-engine.ts';
import type { Transport, TransportEvents, TransportSocket } from './types.ts';

/** The server, as the native transport sees it (`InProcessServer`). */
export interface NativeHost {
  readonly options: LifecycleOptions;
  /** A request's connection: make its lifecycle (already counted and admitted by the engine). */
  adoptAdmitted(transport: Transport): Lifecycle;
  record(kind: keyof ScgiStats, err?: ScgiError, socket?: TransportSocket): void;
  /** Descriptors at or above this are answered 503 (`src/server/fd-limit.ts`). */
  readonly fdCeiling: number;
  /** `n` connections answered 503 for the fd limit: counted and reported (rate-limited), as on net; `stalled`: accept() failed for it too (reported only). */
  fdLimitRefused(n: number, stalled: boolean): void;
}

type Peer = [address: string, port: number] | undefined;

/**
 * What `client.socket` and `'clientError'` show for a native connection.
 * `remoteAddress`/`remotePort` are the front's, as a `net.Socket` over TCP
 * says (undefined on a unix socket): asked of the engine (`getpeername`)
 * on first read only, then kept, as net keeps its peer name.
 */
export class NativeSocket implements TransportSocket {
  readonly #destroy: () => void;
  readonly #lookup: () => Peer;
  #peer: Peer | null = null;
  constructor(destroy: () => void, lookup: () => Peer = noPeer) {
    this.#destroy = destroy;
    this.#lookup = lookup;
  }
  get remoteAddress(): string | undefined {
    return (this.#peer ??= this.#lookup())?.[0];
  }
  get remotePort(): number | undefined {
    return (this.#peer ??= this.#lookup())?.[1];
  }
  destroy(): void {
    this.#destroy();
  }
}

const noop = (): void => {};
const noPeer = (): Peer => undefined;
/** A connection the engine refused before it was a request (closed by then: no peer). */
const REFUSED_SOCKET = new NativeSocket(noop);

/** One dispatched connection of the engine. */
export class NativeTransport implements Transport {
  readonly id: number;
  readonly #owner: NativeConnections;
  events: TransportEvents | null = null;
  /** Body bytes still to come from the engine (then `resume` must ask for them). */
  bodyPending = false;
  /** Our side ended or the connection is gone. */
  #ended = false;
  /** `onClose` delivered or scheduled. */
  closed = false;
  #corked: (string | Uint8Array)[] | null = null;
  #corks = 0;
  #socket: NativeSocket | null = null;

  constructor(owner: NativeConnections, id: number) {
    this.#owner = owner;
    this.id = id;
  }

  get socket(): NativeSocket {
    return (this.#socket ??= new NativeSocket(
      () => this.destroy(),
      () => this.#owner.engine.peer(this.id),
    ));
  }

  get writable(): boolean {
    return !this.#ended && !this.closed;
  }

  attach(events: TransportEvents): void {
    this.events = events;
    // Read the rest of the body ahead, as a net.Socket does: the handler's
    // body stream takes it until it is full, then the lifecycle pauses us.
    // Only then does a handler that reads late not count as a slow front
    // (bodyTimeout counts time spent waiting while the body is wanted).
    if (this.bodyPending) this.#owner.engine.resume(this.id);
  }

  pause(): void {
    if (this.bodyPending && !this.closed) this.#owner.engine.pause(this.id);
  }

  resume(): void {
    if (this.bodyPending && !this.closed) this.#owner.engine.resume(this.id);
  }

  write(data: string | Uint8Array, encoding?: BufferEncoding): boolean {
    if (!this.writable) return false;
    const bytes = toWire(data, encoding);
    if (this.#corked !== null) {
      this.#corked.push(bytes);
      return true;
    }
    const r = this.#owner.engine.write(this.id, bytes);
    if (r === R_CLOSED) {
      this.#owner.markClosed(this);
      return false;
    }
    return r !== R_FULL;
  }

  end(data?: string | Uint8Array | null, encoding?: BufferEncoding, close = false): boolean {
    if (!this.writable) return true;
    this.#ended = true;
    let bytes: string | Uint8Array = data == null ? '' : toWire(data, encoding);
    const corked = this.#corked;
    if (corked !== null) {
      this.#corked = null;
      this.#corks = 0;
      corked.push(bytes);
      bytes = Buffer.concat(corked.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
    }
    const r = this.#owner.engine.respond(this.id, bytes, close);
    if (r === R_CLOSED) this.#owner.markClosed(this);
    // R_FULL: the rest is written natively; a drain record says when it is out.
    return r !== R_FULL;
  }

  /** `end` was called (a drain record then means the whole response is out). */
  get ended(): boolean {
    return this.#ended;
  }

  cork(): void {
    this.#corks++;
    this.#corked ??= [];
  }

  uncork(): boolean {
    const corked = this.#corked;
    if (corked === null || --this.#corks > 0) return true;
    this.#corked = null;
    if (corked.length === 0) return true;
    return this.write(corked.length === 1 ? corked[0]! : Buffer.concat(corked.map((c) => (typeof c === 'string' ? Buffer.from(c) : c))));
  }

  reset(): void {
    if (this.closed) return;
    this.#owner.engine.reset(this.id);
    this.#owner.markClosed(this);
  }

  destroy(): void {
    if (this.closed) return;
    this.#owner.engine.destroy(this.id);
    this.#owner.markClosed(this);
  }
}

/** Strings go to the addon as UTF-8; other encodings are converted here. */
function toWire(data: string | Uint8Array, encoding?: BufferEncoding): string | Uint8Array {
  if (typeof data !== 'string') return data;
  if (encoding === undefined || encoding === 'utf8' || encoding === 'utf-8') return data;
  // latin1 that is ASCII is the same bytes in UTF-8 (response heads are ASCII).
  if (encoding === 'latin1' && isAscii(data)) return data;
  return Buffer.from(data, encoding);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the range \x00-\x7f is ASCII, control characters included, on purpose
const NON_ASCII = /[^\x00-\x7f]/;
function isAscii(s: string): boolean {
  return !NON_ASCII.test(s);
}

/** Why the native transport cannot serve this `serve()` call, or null when it can. */
export function nativeUnavailableReason(): string | null {
  if (transportAddon() === null) return nativeTransportError()?.message ?? 'the addon did not load';
  return null;
}

/** The engine of one server and the map from its ids to live transports. */
export class NativeConnections implements NativeEngineEvents {
  readonly engine: NativeEngine;
  readonly #host: NativeHost;
  readonly #live = new Map<number, NativeTransport>();
  #toClose: NativeTransport[] = [];
  /** The requests of the batch being delivered (see `onBatchEnd`). */
  readonly #fresh: Lifecycle[] = [];
  #flushQueued = false;
  readonly #flush = (): void => {
    this.#flushQueued = false;
    const list = this.#toClose;
    this.#toClose = [];
    for (const t of list) t.events?.onClose();
  };

  constructor(host: NativeHost, maxConnections: number) {
    this.#host = host;
    const o = host.options;
    this.engine = new NativeEngine(
      {
        maxHeaderSize: o.maxHeaderSize,
        maxHeadersCount: o.maxHeadersCount,
        strict: o.strict,
        // The engine hands every request to the lifecycle at header
        // completion, with the body bytes that came with the header; the rest
        // streams to it, so bodyTimeout/minBodyRate, requestTimeout,
        // maxBodySize (413) and shutdown apply to every phase, as on net.
        maxConnections,
        headerTimeout: o.headerTimeout,
        drainTimeout: o.drainTimeout,
        maxDrainSize: o.maxDrainSize,
        writeHighWaterMark: 64 * 1024,
        allowHalfOpen: o.allowHalfOpen,
        fdCeiling: host.fdCeiling,
        sweepInterval: sweepTick([o.headerTimeout, o.drainTimeout]),
        overloadResponse: Buffer.from(refusalResponse(503), 'latin1'),
      },
      this,
    );
  }

  /** Connections handed to JS and not yet closed. */
  get live(): number {
    return this.#live.size;
  }

  /** `t` closed inside a call (respond/reset/destroy): its `onClose` runs after the current call stack. */
  markClosed(t: NativeTransport): void {
    if (t.closed) return;
    t.closed = true;
    this.#live.delete(t.id);
    this.#toClose.push(t);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  onRequest(id: number, req: Buffer, recs: Uint32Array, at: number, complete: boolean): void {
    const t = new NativeTransport(this, id);
    t.bodyPending = !complete;
    this.#live.set(id, t);
    const lifecycle = this.#host.adoptAdmitted(t);
    this.#fresh.push(lifecycle);
    lifecycle.startRequest(req, recs, at, true, Date.now());
  }

  /**
   * A request still open after its batch (a long-poll, a handler that
   * awaits) keeps only its own bytes: its headers were views into the
   * batch's buffer, which holds the whole wake-up (uploads' bodies too). One
   * answered within the batch, the usual case, copies nothing.
   */
  onBatchEnd(): void {
    const fresh = this.#fresh;
    if (fresh.length === 0) return;
    for (const lifecycle of fresh) lifecycle.ownBytes();
    fresh.length = 0;
  }

  onData(id: number, chunk: Buffer, last: boolean): void {
    const t = this.#live.get(id);
    if (t === undefined) return;
    if (last) t.bodyPending = false;
    t.events!.onData(chunk);
  }

  onReject(code: number): void {
    if (code === REJECT_HEADER_TIMEOUT) {
      this.#host.record('timeouts', headerTimeoutError(this.#host.options.headerTimeout), REFUSED_SOCKET);
    } else if (code === REJECT_INCOMPLETE_HEADER) {
      this.#host.record('rejected', incompleteHeaderError(), REFUSED_SOCKET);
    } else {
      this.#host.record('rejected', errorOfParseCode(code), REFUSED_SOCKET);
    }
  }

  onClose(id: number, reason: number): void {
    const t = this.#live.get(id);
    if (t === undefined) return;
    this.#live.delete(id);
    t.closed = true;
    const events = t.events!;
    // The engine closed it: a FIN or reset before the response ended
    // (ABORTED), or before the whole body came (BODY_TRUNCATED). The
    // lifecycle takes both as the net transport's 'end' (onFin), then 'close'.
    if (reason === CLOSE_ABORTED || reason === CLOSE_BODY_TRUNCATED) events.onFin();
    events.onClose();
  }

  onDrain(id: number): void {
    const t = this.#live.get(id);
    if (t === undefined) return;
    t.events!.onDrain();
    if (t.ended) t.events!.onFinish();
  }

  onAccepted(accepted: number, overloaded: number, acceptErrors: number, nearFdLimit: number): void {
    const host = this.#host;
    for (let i = 0; i < accepted; i++) host.record('connections');
    for (let i = 0; i < overloaded; i++) host.record('overloaded');
    // Answered 503 near the fd limit: counted, once each. An accept() that
    // failed for lack of descriptors refused nobody (the engine stops
    // watching the listening socket for a while, no spin, and tries again:
    // the connection waits in the backlog), so it is reported, not counted.
    if (nearFdLimit + acceptErrors > 0) host.fdLimitRefused(nearFdLimit, acceptErrors > 0);
  }
}
