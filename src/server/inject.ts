/**
 * `inject(handler, request)`: call an SCGI handler (raw, or one made by
 * `fromNodeListener` / `fromFetch`) without any socket, through the same
 * connection lifecycle the server uses (over an in-memory `Transport`), and
 * get the parsed response. For tests.
 */
import { encodeRequest, type ClientRequest, type ClientResponse } from '../client/request.ts';
import { parseResponse } from '../protocol/wire.ts';
import { ScgiError } from '../errors.ts';
import { normalizeOptions, type ServeOptions } from '../options.ts';
import type { Handler } from '../connection/scgi-client.ts';
import { InProcessServer } from './serve.ts';
import { MemoryTransport } from '../transport/memory.ts';

export type InjectOptions = Pick<
  ServeOptions,
  'maxHeaderSize' | 'maxHeadersCount' | 'strict' | 'maxBodySize' | 'requestTimeout' | 'headerEncoding' | 'catchErrors' | 'onError'
>;

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
