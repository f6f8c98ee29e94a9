/**
 * The `Transport` of a `net.Socket` (TCP or unix), as a `net.Server`
 * accepts it. Hot path: the socket listeners are module-level functions that
 * find their transport through a symbol on the socket (no closures per
 * connection); the 'drain' listener is added only when a write returned
 * false.
 */
import type { Socket } from 'node:net';
import type { Transport, TransportEvents } from './types.ts';

const kTransport = Symbol('scgi.transport');
type TaggedSocket = Socket & { [kTransport]: NetTransport };

function onSocketData(this: TaggedSocket, chunk: Buffer): void {
  this[kTransport].events!.onData(chunk);
}
function onSocketEnd(this: TaggedSocket): void {
  this[kTransport].events!.onFin();
}
function onSocketClose(this: TaggedSocket): void {
  this[kTransport].events!.onClose();
}
function onSocketError(this: TaggedSocket, _err: Error): void {
  // ECONNRESET / EPIPE from a front that went away: 'close' follows and cleans up.
}
function onSocketFinish(this: TaggedSocket): void {
  this[kTransport].events!.onFinish();
}
function onSocketDrain(this: TaggedSocket): void {
  const t = this[kTransport];
  t.drainArmed = false;
  t.events!.onDrain();
}

export class NetTransport implements Transport {
  /** The accepted socket (what `client.socket` is). */
  readonly socket: Socket;
  /** The lifecycle's events (set by `attach`). */
  events: TransportEvents | null = null;
  /** A 'drain' listener is waiting. */
  drainArmed = false;

  constructor(socket: Socket) {
    this.socket = socket;
    (socket as TaggedSocket)[kTransport] = this;
  }

  get writable(): boolean {
    const s = this.socket;
    return !s.destroyed && s.writable;
  }

  attach(events: TransportEvents): void {
    this.events = events;
    const s = this.socket;
    s.on('data', onSocketData);
    s.on('end', onSocketEnd);
    s.on('close', onSocketClose);
    s.on('error', onSocketError);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    const s = this.socket;
    if (s.isPaused()) s.resume();
  }

  write(data: string | Uint8Array, encoding?: BufferEncoding): boolean {
    return this.socket.write(data, encoding as BufferEncoding) || this.#armDrain();
  }

  end(data?: string | Uint8Array | null, encoding?: BufferEncoding, close?: boolean): boolean {
    const s = this.socket;
    if (data == null) s.end();
    else s.end(data, encoding);
    // Closed once the response is flushed (FIN, and no reset: nothing unread).
    if (close) s.destroySoon();
    // Written at once (the usual case): no listener. Else 'finish' says when.
    if (s.writableLength === 0) return true;
    s.once('finish', onSocketFinish);
    return false;
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): boolean {
    const s = this.socket;
    s.uncork();
    return s.writableLength < s.writableHighWaterMark || this.#armDrain();
  }

  /** false, with a 'drain' listener waiting. */
  #armDrain(): false {
    if (!this.drainArmed) {
      this.drainArmed = true;
      this.socket.once('drain', onSocketDrain);
    }
    return false;
  }

  reset(): void {
    const s = this.socket;
    if (s.destroyed) return;
    // Only TCP has a reset (and a remote address); on a unix socket resetAndDestroy throws.
    if (s.remoteAddress !== undefined && typeof s.resetAndDestroy === 'function') {
      try {
        s.resetAndDestroy();
        return;
      } catch {
        // not a TCP handle after all
      }
    }
    s.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
