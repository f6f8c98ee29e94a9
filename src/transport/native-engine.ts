/**
 * Thin binding of the addon's native transport engine
 * (`crates/scgi-napi/src/transport/`, Linux only): one listening socket and
 * its connections in one epoll set, watched by one `uv_poll` on this thread's
 * loop. Once per loop wake-up the engine calls back with one Buffer and one
 * Uint32Array holding every event of that wake-up; this file decodes them
 * into calls on a `NativeEngineEvents` object (no per-request objects are
 * made here; `onRequest` gets offsets into the batch).
 *
 * The contract with the addon (`crates/scgi-napi/src/transport/batch.rs` is
 * the other half; the addon's `transportConstants()` lists its values, and
 * test/native-contract.test.ts fails when one differs from the constants
 * below, which are plain numbers so the batch loop reads no table).
 *
 * Batch layout: `recs[0..BATCH_HEADER]` are counters
 * (accepted, answered 503, accept errors, answered 503 near the fd limit); then records
 * `[type, slot, generation, n, payload × n]`; a request's payload is
 * `[start, end, complete, out...]` with `out` the parser's array for
 * `buf[start..end]`. A connection's id is
 * `generation * 2^22 + slot`; ids of closed connections are refused by every
 * call (the generation moved on), so a late response can never reach another
 * connection.
 */
import { loadAddon } from '../parser/native.ts';

/** Record types of a batch. */
export const EV_REQUEST = 1;
export const EV_DATA = 2;
export const EV_REJECT = 3;
export const EV_CLOSE = 4;
export const EV_DRAIN = 5;

/** Reject codes above the parser's 1-8 (`Code` in src/parser/types.ts). */
export const REJECT_INCOMPLETE_HEADER = 9;
export const REJECT_HEADER_TIMEOUT = 10;

/** Why a dispatched connection closed. */
export const CLOSE_DONE = 0;
export const CLOSE_ABORTED = 1;
export const CLOSE_BODY_TRUNCATED = 2;

/** Results of respond/write/control. */
export const R_STALE = 0;
export const R_OK = 1;
export const R_FULL = 2;
export const R_CLOSED = 3;

/** The batch's header: counters since the previous batch, then the records. */
export const BATCH_ACCEPTED = 0;
export const BATCH_OVERLOADED = 1;
export const BATCH_ACCEPT_ERRORS = 2;
export const BATCH_FD_LIMIT = 3;
export const BATCH_HEADER = 4;

/** A connection's id is `generation * 2^SLOT_BITS + slot`. */
export const SLOT_BITS = 22;
const SLOT_FACTOR = 2 ** SLOT_BITS;

/** `transportControl` operations. */
export const OP_PAUSE = 0;
export const OP_RESUME = 1;
export const OP_RESET = 2;
export const OP_DESTROY = 3;

/** `transportServer` operations. */
export const SERVER_OP_CLOSE_LISTENER = 0;
export const SERVER_OP_CLOSE_IDLE = 1;
export const SERVER_OP_OPEN_COUNT = 2;
export const SERVER_OP_REF = 3;
export const SERVER_OP_UNREF = 4;
export const SERVER_OP_CLOSE = 5;

/** The order of `transportCreate`'s options array: `NativeEngineOptions` by name. */
export const CONFIG_FIELDS = [
  'maxHeaderSize',
  'maxHeadersCount',
  'strict',
  'maxConnections',
  'headerTimeout',
  'drainTimeout',
  'maxDrainSize',
  'writeHighWaterMark',
  'allowHalfOpen',
  'sweepInterval',
  'fdCeiling',
] as const satisfies readonly (keyof NativeEngineOptions)[];

/** `options` as `transportCreate` takes them (booleans as 0/1, an absent `fdCeiling` as no limit). */
function configArray(options: NativeEngineOptions): Float64Array {
  return Float64Array.from(CONFIG_FIELDS, (name) => {
    const v = options[name];
    return typeof v === 'boolean' ? Number(v) : (v ?? Infinity);
  });
}

interface TransportAddon {
  transportCreate(options: Float64Array, onBatch: (buf: Buffer, recs: Uint32Array) => void, resp503: Uint8Array): object;
  transportListenUnix(t: object, path: string, backlog: number): number;
  transportListenTcp(t: object, ip: string, port: number, backlog: number): number;
  transportAdopt(t: object, fd: number): number;
  transportListenSocket(address: string, port: number, backlog: number): [number, number];
  transportRespond(t: object, id: number, data: Uint8Array | string, close: number): number;
  transportWrite(t: object, id: number, data: Uint8Array | string): number;
  transportControl(t: object, id: number, op: number): number;
  transportServer(t: object, op: number): number;
  transportPeer(t: object, id: number): [address: string, port: number] | undefined;
  transportPending(fd: number): boolean;
  transportConstants(): Record<string, number> & { CONFIG_FIELDS: string[] };
}

let addon: TransportAddon | null = null;
let addonError: Error | null = null;

/** The addon's transport functions, or null (with `nativeTransportError()`) when unavailable. */
export function transportAddon(): TransportAddon | null {
  if (addon !== null || addonError !== null) return addon;
  try {
    if (process.platform !== 'linux') throw new Error(`the native transport is Linux-only (this is ${process.platform})`);
    const a = loadAddon() as unknown as Partial<TransportAddon>;
    if (typeof a.transportCreate !== 'function') throw new Error('the loaded addon has no native transport (rebuild it)');
    addon = a as TransportAddon;
  } catch (err) {
    addonError = err instanceof Error ? err : new Error(String(err));
  }
  return addon;
}

/** Why the native transport is unavailable (null when it loaded or was not tried). */
export function nativeTransportError(): Error | null {
  return addonError;
}

/**
 * A listening socket that no engine watches: `[fd, port]` (port 0 for a
 * unix path, given as `port` -1). A cluster primary binds it once and hands
 * it to every worker, which adopts it (`src/server/cluster.ts`); the descriptor is
 * close-on-exec and the caller closes it (`fs.closeSync`).
 */
export function listenSocket(address: string, port: number, backlog: number): [fd: number, port: number] {
  const a = transportAddon();
  if (a === null) throw addonError ?? new Error('native transport unavailable');
  if (typeof a.transportListenSocket !== 'function') throw new Error('the loaded addon has no transportListenSocket (rebuild it)');
  return a.transportListenSocket(address, port, backlog);
}

/**
 * Whether a connection waits in the backlog of listening socket `fd` (one
 * `poll`), or null where the addon cannot tell (not Linux, no addon).
 */
export function listenerPending(fd: number): boolean | null {
  const a = transportAddon();
  if (a === null || typeof a.transportPending !== 'function') return null;
  return a.transportPending(fd);
}

export interface NativeEngineOptions {
  maxHeaderSize: number;
  maxHeadersCount: number;
  strict: boolean;
  maxConnections: number;
  headerTimeout: number;
  /** From the last response byte written to close (the engine's drain of unread bytes). */
  drainTimeout: number;
  maxDrainSize: number;
  /** Unwritten bytes kept natively before `write` reports full. */
  writeHighWaterMark: number;
  allowHalfOpen: boolean;
  /** Period of the native deadline sweep, ms. */
  sweepInterval: number;
  /** Accepted descriptors at or above this get `overloadResponse` (see src/server/fd-limit.ts). Default: no limit. */
  fdCeiling?: number;
  /** The whole response for a connection over maxConnections. */
  overloadResponse: Uint8Array;
}

/** What the engine tells its owner. `buf` is the batch's bytes (shared by its records). */
export interface NativeEngineEvents {
  /**
   * A request: `req` holds the header (up to `recs[at + OUT_HEADER_END]`)
   * and the body bytes read so far; `recs` from `at` on is the parser's
   * array for `req` (as `parse` fills it). `req` is a view into the batch's
   * bytes, and `recs` is the batch's records, which nothing writes again:
   * both can be kept (`headersFromParse` with `keep` reads them in place).
   * `complete` when `req` holds the whole body. Every request comes as soon
   * as its header is complete; the rest of its body follows as `onData`
   * while it is read (`resume`).
   */
  onRequest(id: number, req: Buffer, recs: Uint32Array, at: number, complete: boolean): void;
  /** Body bytes of a streamed request (its own bytes, or most of the batch's); `last` when the body is complete. */
  onData(id: number, chunk: Buffer, last: boolean): void;
  /** A connection refused before dispatch (closed): a bad header, cut short, or too slow. */
  onReject(code: number): void;
  /** A dispatched connection is gone (`CLOSE_*`). */
  onClose(id: number, reason: number): void;
  /** The unwritten bytes after a full `write` are out. */
  onDrain(id: number): void;
  /** Every record of the batch was delivered (optional). */
  onBatchEnd?(): void;
  /** Counters of the batch: accepted connections, 503s over maxConnections, accept errors, 503s near the fd limit. */
  onAccepted(accepted: number, overloaded: number, acceptErrors: number, nearFdLimit: number): void;
}

export class NativeEngine {
  readonly #a: TransportAddon;
  readonly #t: object;
  #closed = false;

  constructor(options: NativeEngineOptions, events: NativeEngineEvents) {
    const a = transportAddon();
    if (a === null) throw addonError ?? new Error('native transport unavailable');
    this.#a = a;
    this.#t = a.transportCreate(configArray(options), (buf, recs) => dispatchBatch(events, buf, recs), options.overloadResponse);
  }

  listenUnix(path: string, backlog = 511): void {
    this.#a.transportListenUnix(this.#t, path, backlog);
  }
  /** Binds an IP literal; returns the port (useful with port 0). */
  listenTcp(ip: string, port: number, backlog = 511): number {
    return this.#a.transportListenTcp(this.#t, ip, port, backlog);
  }
  /** Listens on a duplicate of an inherited listening socket; returns its port (0 for unix). */
  adopt(fd: number): number {
    return this.#a.transportAdopt(this.#t, fd);
  }
  /**
   * The response's last bytes; then the engine closes (`close`: the front
   * sends nothing more, see `Transport.end`), or half-closes, drains and closes.
   */
  respond(id: number, data: Uint8Array | string, close = false): number {
    return this.#a.transportRespond(this.#t, id, data, close ? 1 : 0);
  }
  /** Part of the response; `R_FULL` means wait for `onDrain`. */
  write(id: number, data: Uint8Array | string): number {
    return this.#a.transportWrite(this.#t, id, data);
  }
  pause(id: number): number {
    return this.#a.transportControl(this.#t, id, OP_PAUSE);
  }
  resume(id: number): number {
    return this.#a.transportControl(this.#t, id, OP_RESUME);
  }
  /** Close with RST on TCP (an incomplete response must not look complete). */
  reset(id: number): number {
    return this.#a.transportControl(this.#t, id, OP_RESET);
  }
  destroy(id: number): number {
    return this.#a.transportControl(this.#t, id, OP_DESTROY);
  }
  /** The TCP peer's address and port (one `getpeername`); undefined on a unix socket or for a closed id. */
  peer(id: number): [address: string, port: number] | undefined {
    return this.#closed ? undefined : this.#a.transportPeer(this.#t, id);
  }
  closeListener(): void {
    if (!this.#closed) this.#a.transportServer(this.#t, SERVER_OP_CLOSE_LISTENER);
  }
  /** Closes connections that have sent nothing yet; returns how many. */
  closeIdle(): number {
    return this.#closed ? 0 : this.#a.transportServer(this.#t, SERVER_OP_CLOSE_IDLE);
  }
  get openConnections(): number {
    return this.#closed ? 0 : this.#a.transportServer(this.#t, SERVER_OP_OPEN_COUNT);
  }
  ref(): void {
    if (!this.#closed) this.#a.transportServer(this.#t, SERVER_OP_REF);
  }
  unref(): void {
    if (!this.#closed) this.#a.transportServer(this.#t, SERVER_OP_UNREF);
  }
  /** Closes the listener and every connection at once; the engine is unusable after. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#a.transportServer(this.#t, SERVER_OP_CLOSE);
  }
  get closed(): boolean {
    return this.#closed;
  }
}

/**
 * Delivers each record of a batch whatever the others do: an exception from
 * one (a listener's bug) is thrown again on a later tick, as the uncaught
 * exception it is, after the rest of the batch was delivered (else the
 * requests and closes after it would be lost, their lifecycles left hanging).
 */
function dispatchBatch(ev: NativeEngineEvents, buf: Buffer, recs: Uint32Array): void {
  const accepted = recs[BATCH_ACCEPTED]!;
  const overloaded = recs[BATCH_OVERLOADED]!;
  const acceptErrors = recs[BATCH_ACCEPT_ERRORS]!;
  const nearFdLimit = recs[BATCH_FD_LIMIT]!;
  if (accepted !== 0 || overloaded !== 0 || acceptErrors !== 0 || nearFdLimit !== 0) {
    try {
      ev.onAccepted(accepted, overloaded, acceptErrors, nearFdLimit);
    } catch (err) {
      rethrowLater(err);
    }
  }
  const len = recs.length;
  // Each record: [type, slot, generation, n, payload × n].
  for (let i = BATCH_HEADER; i < len; i += 4 + recs[i + 3]!) {
    try {
      dispatchRecord(ev, buf, recs, i);
    } catch (err) {
      rethrowLater(err);
    }
  }
  ev.onBatchEnd?.();
}

/** Throw `err` on a later tick, as an uncaught exception, after the current call has done its work. */
export function rethrowLater(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}

function dispatchRecord(ev: NativeEngineEvents, buf: Buffer, recs: Uint32Array, i: number): void {
  const type = recs[i]!;
  const id = recs[i + 2]! * SLOT_FACTOR + recs[i + 1]!;
  const p = i + 4;
  switch (type) {
    case EV_REQUEST:
      ev.onRequest(id, buf.subarray(recs[p]!, recs[p + 1]!), recs, p + 3, recs[p + 2] === 1);
      break;
    case EV_DATA: {
      // A piece of a streamed body (its request outlived the batch of its
      // header) owns its bytes, unless it is most of the batch anyway.
      const piece = buf.subarray(recs[p]!, recs[p + 1]!);
      ev.onData(id, piece.length * 2 < buf.length ? Buffer.from(piece) : piece, recs[p + 2] === 1);
      break;
    }
    case EV_REJECT:
      ev.onReject(recs[p]!);
      break;
    case EV_CLOSE:
      ev.onClose(id, recs[p]!);
      break;
    case EV_DRAIN:
      ev.onDrain(id);
      break;
  }
}
