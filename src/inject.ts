/**
 * `inject(handler, request)`: call an SCGI handler (raw, or one made by
 * `fromNodeListener` / `fromFetch`) without any socket, through the same
 * connection lifecycle the server uses (over an in-memory `Transport`), and
 * get the parsed response. For tests.
 */
import { encodeRequest, type ClientRequest, type ClientResponse } from './requester.ts';
import { parseResponse } from './wire.ts';
import { ScgiError } from './errors.ts';
import { normalizeOptions, type ServeOptions } from './options.ts';
import type { Handler } from './scgi-client.ts';
import { InProcessServer } from './server.ts';
import type { Transport, TransportEvents, TransportSocket } from './transport/types.ts';

export type InjectOptions = Pick<
  ServeOptions,
  'maxHeaderSize' | 'maxHeadersCount' | 'strict' | 'maxBodySize' | 'requestTimeout' | 'headerEncoding' | 'catchErrors' | 'onError'
>;

/**
 * An in-memory connection: the request is delivered as one chunk on a
 * later tick, every write is accepted at once (never returns false), and
 * when the server ends its response the "front" closes, as nginx does.
 */
class MemoryTransport implements Transport {
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

/**
 * Run `handler` on one request (same shape as `scgi/client`'s `request`) and
 * resolve with the response. Rejects with an `ScgiError`: the code the
 * request was refused with (bad input, over a limit), `ERR_SCGI_NO_RESPONSE`
 * when the connection closes without a response, `ERR_SCGI_BAD_RESPONSE`
 * when what the handler wrote is not a CGI response.
 */
export function inject(handler: Handler, request: ClientRequest = {}, options: InjectOptions = {}): Promise<ClientResponse> {
  const opts = normalizeOptions({ ...options, headerTimeout: 0, handleSignals: false });
  const host = new InProcessServer(handler, opts, null);
  // A refused request is closed without a response: reject with why (the 'clientError').
  let refused: ScgiError | null = null;
  host.on('clientError', (err: ScgiError) => (refused ??= err));
  return new Promise((resolve, reject) => {
    const transport = new MemoryTransport((t) => {
      const data = Buffer.concat(t.written);
      if (data.length === 0) {
        return reject(refused ?? new ScgiError('ERR_SCGI_NO_RESPONSE', 'inject: the connection closed without a response'));
      }
      try {
        resolve(parseResponse(data));
      } catch (err) {
        reject(err);
      }
    });
    host.accept(transport);
    transport.send(encodeRequest(request));
  });
}
