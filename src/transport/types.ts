/**
 * The seam between one connection's request lifecycle (`src/connection/lifecycle.ts`)
 * and whatever carries its bytes. The lifecycle never sees a `net.Socket`:
 * it calls a `Transport`, and the transport calls the lifecycle's
 * `TransportEvents`. Three implementations: `src/transport/net.ts` (a
 * `net.Socket`), `src/transport/native.ts` (a connection of the addon's
 * engine) and `src/server/inject.ts` (in memory). docs/ARCHITECTURE.md ("The transport
 * seam") says what each side promises.
 */

/**
 * What a transport shows the application as `client.socket` and as the
 * second argument of `'clientError'`: for the net transport, the
 * `net.Socket` itself (narrow it with `instanceof net.Socket` for socket
 * options); any other transport provides at least these members.
 */
export interface TransportSocket {
  /** The peer's address: an IP for TCP; undefined on a unix socket. */
  readonly remoteAddress?: string | undefined;
  /** The peer's port for TCP. */
  readonly remotePort?: number | undefined;
  /** Close the connection at once. */
  destroy(error?: Error): unknown;
}

/** The connection as the lifecycle sees it: bytes in (through `TransportEvents`), bytes out, close. */
export interface Transport {
  /** What the application sees as `client.socket` (see `TransportSocket`). */
  readonly socket: TransportSocket;
  /** False once our side is ended or the connection is gone: `write` and `end` would send nothing. */
  readonly writable: boolean;
  /**
   * Start calling `events`. Called once, by the lifecycle's constructor,
   * before any other method.
   */
  attach(events: TransportEvents): void;
  /** Stop calling `onData` until `resume` (the handler's body stream is full). Idempotent. */
  pause(): void;
  /** Call `onData` again. Idempotent. */
  resume(): void;
  /**
   * Queue `data` for the peer. Returns false when the transport's buffer is
   * over its high-water mark: `onDrain` is then called once it empties.
   */
  write(data: string | Uint8Array, encoding?: BufferEncoding): boolean;
  /**
   * Queue `data` (if given), then half-close our side (FIN) once all is
   * sent. Reading goes on (what the peer still sends is the lifecycle's to
   * discard), unless `close`: the whole request was read, nothing more is
   * expected, so the connection closes once everything is sent (`onClose`
   * follows) without waiting for the peer (the lifecycle decides:
   * `finishResponse` in src/connection/lifecycle.ts). Returns true when every byte of
   * the response is written (handed to the kernel) already; else
   * `onFinish` follows once it is (or `onClose`, if the connection goes first).
   */
  end(data?: string | Uint8Array | null, encoding?: BufferEncoding, close?: boolean): boolean;
  /** Gather the writes until `uncork` into one (one syscall). Calls nest: the outermost `uncork` sends. */
  cork(): void;
  /**
   * Send what `cork` gathered. Returns what `write` would have: false when
   * the buffer is over its high-water mark (`onDrain` follows). A write made
   * while corked reports only what the transport knows then (true when the
   * transport gathers the bytes itself), so callers combine both results.
   */
  uncork(): boolean;
  /**
   * Close now, telling the peer the response is incomplete: a TCP reset
   * (RST), so nginx reports the upstream reset instead of passing a
   * truncated body on as complete. Where there is no reset (unix sockets),
   * the same as `destroy`.
   */
  reset(): void;
  /** Close now. `onClose` follows (possibly later, never synchronously re-entering). */
  destroy(): void;
}

/**
 * What the lifecycle implements, and the only calls a transport makes into
 * it. Each is an event: the transport reports what happened, the lifecycle
 * decides what it means.
 */
export interface TransportEvents {
  /** Bytes from the peer, in order. The chunk is the lifecycle's to keep. */
  onData(chunk: Buffer): void;
  /** The peer half-closed (FIN): no more `onData`. */
  onFin(): void;
  /** The write buffer emptied after a `write` returned false. */
  onDrain(): void;
  /** The last byte of the response is written, after an `end` that returned false. */
  onFinish(): void;
  /** The connection is gone (after `destroy`, `reset`, an error, or both sides closed). Called once, last. */
  onClose(): void;
}
