/**
 * `inject(handler, request)`: call an SCGI handler (raw, or one made by
 * `fromNodeListener` / `fromFetch`) without any socket, through the same
 * connection code the server uses, and get the parsed response. For tests.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { encodeRequest, parseResponse, type ClientRequest, type ClientResponse } from './client.ts';
import type { Handler } from './connection.ts';
import { InProcessServer, normalizeOptions, type ServeOptions } from './server.ts';

export type InjectOptions = Pick<
  ServeOptions,
  'maxHeaderSize' | 'maxHeadersCount' | 'strict' | 'maxBodySize' | 'requestTimeout' | 'headerEncoding' | 'catchErrors' | 'onError'
>;

/** An in-memory stand-in for the front's socket. */
class MemorySocket extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  readonly chunks: Buffer[] = [];

  constructor() {
    super({ allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    callback();
  }

  override _final(callback: (err?: Error | null) => void): void {
    // The server ended its response: the front closes, as nginx does.
    this.push(null);
    callback();
  }
}

/**
 * Run `handler` on one request (same shape as `scgi/client`'s `request`) and
 * resolve with the response. Rejects if the connection closes without a
 * response (for example on bad input).
 */
export function inject(handler: Handler, request: ClientRequest = {}, options: InjectOptions = {}): Promise<ClientResponse> {
  const opts = normalizeOptions({ ...options, headerTimeout: 0, handleSignals: false });
  const host = new InProcessServer(handler, opts, null);
  const socket = new MemorySocket();
  return new Promise((resolve, reject) => {
    socket.once('close', () => {
      const data = Buffer.concat(socket.chunks);
      if (data.length === 0) return reject(new Error('inject: the connection closed without a response'));
      try {
        resolve(parseResponse(data));
      } catch (err) {
        reject(err);
      }
    });
    host.accept(socket as unknown as Socket);
    socket.push(encodeRequest(request));
  });
}
