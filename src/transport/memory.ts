/**
 * `MemoryTransport`: a connection with no socket, for `inject()`
 * (`src/server/inject.ts`), under the same lifecycle as a real one.
 */
import type { Transport, TransportEvents, TransportSocket } from './types.ts';

/**
 * An in-memory connection: the request is delivered as one chunk on a
 * later tick, every write is accepted at once (never returns false), and
 * when the server ends its response the "front" closes, as nginx does.
 */
export class MemoryTransport implements Transport {
  readonly socket: TransportSocket;
  /** What the server wrote. */
  readonly written: Buffer[] = [];
  #events: TransportEvents | null = null;
  #input: Buffer[] = [];
  #paused = false;
  #scheduled = false;
  #ended = false;
  #closed = false;
  readonly #onClosed: (t: MemoryTransport) => void;

  constructor(onClosed: (t: MemoryTransport) => void) {
    this.#onClosed = onClosed;
    this.socket = { remoteAddress: '127.0.0.1', remotePort: 0, destroy: () => this.destroy() };
  }

  get writable(): boolean {
    return !this.#ended && !this.#closed;
  }

  attach(events: TransportEvents): void {
    this.#events = events;
  }

  /** The front sends `bytes`. */
  send(bytes: Buffer): void {
    this.#input.push(bytes);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    process.nextTick(() => {
      this.#scheduled = false;
      while (!this.#paused && !this.#closed && this.#input.length > 0) this.#events!.onData(this.#input.shift()!);
    });
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#input.length > 0) this.#schedule();
  }

  write(data: string | Uint8Array, encoding?: BufferEncoding): boolean {
    if (!this.writable) return true;
    this.written.push(typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : Buffer.from(data));
    return true;
  }

  end(data?: string | Uint8Array | null, encoding?: BufferEncoding): boolean {
    if (data != null) this.write(data, encoding);
    if (this.#ended) return true;
    this.#ended = true;
    // The server ended its response: the front closes, as nginx does.
    process.nextTick(() => {
      if (this.#closed) return;
      this.#events!.onFin();
      this.destroy();
    });
    return true;
  }

  cork(): void {}
  uncork(): boolean {
    return true;
  }

  reset(): void {
    this.destroy();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    process.nextTick(() => {
      this.#events!.onClose();
      this.#onClosed(this);
    });
  }
}
