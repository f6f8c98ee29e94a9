/**
 * `readHeader(stream)`: the SCGI request parser for sockets you manage
 * yourself (`scgi-read-header` in `(sph scgi)`).
 */
import { Readable } from 'node:stream';
import { headerTimeoutError, incompleteHeaderError, ScgiError } from '../errors.ts';
import { HeaderReader, type HeaderParse } from './header-reader.ts';
import { errorFromParse, headersFromParse, type ScgiHeaders, type HeaderEncoding } from './scgi-headers.ts';
import { checkTimeout, DEFAULTS, headerLimits } from '../options.ts';
import { FLAG_STRICT, OUT_HEADER_END, Status, outSize, parse } from '../parser/index.ts';

/** The header options of `serve`, with the same defaults and ranges (`src/options.ts`). */
export interface ReadHeaderOptions {
  maxHeaderSize?: number;
  maxHeadersCount?: number;
  strict?: boolean;
  headerEncoding?: HeaderEncoding;
  /**
   * ms for the whole header to arrive, as `serve`'s: then the promise rejects
   * with `ERR_SCGI_HEADER_TIMEOUT` (the stream is left to the caller, as on
   * every other rejection). Default 10000; 0 = none.
   */
  headerTimeout?: number;
}

/**
 * Read one SCGI request header from `stream`. Resolves with the headers and
 * `body`, a Readable of exactly CONTENT_LENGTH bytes; bytes after the body are
 * pushed back onto `stream` (unshift) for the caller. Rejects with an
 * `ScgiError` on bad input, on EOF before the header is complete
 * (`ERR_SCGI_INCOMPLETE_HEADER`); the body stream errors with
 * `ERR_SCGI_BODY_TRUNCATED` on EOF before CONTENT_LENGTH bytes.
 */
export function readHeader(stream: Readable, options: ReadHeaderOptions = {}): Promise<{ headers: ScgiHeaders; body: Readable }> {
  let cfg: HeaderParse;
  let timeout: number;
  try {
    const limits = headerLimits(options);
    cfg = { parse, out: new Uint32Array(outSize(limits.maxHeadersCount)), ...limits, flags: options.strict ? FLAG_STRICT : 0 };
    timeout = checkTimeout('headerTimeout', options.headerTimeout ?? DEFAULTS.headerTimeout);
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise((resolve, reject) => {
    const reader = new HeaderReader();
    // One timer per call: readHeader is for streams the caller manages, not the server's hot path.
    const timer =
      timeout > 0
        ? setTimeout(() => {
            cleanup();
            reject(headerTimeoutError(timeout));
          }, timeout)
        : null;
    timer?.unref();
    const cleanup = () => {
      if (timer !== null) clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    // Destroyed without an error (no 'end', no 'error'): only 'close' says so.
    const onClose = () => {
      cleanup();
      reject(incompleteHeaderError('the stream closed'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onEnd = () => {
      cleanup();
      reject(incompleteHeaderError('the stream ended'));
    };
    const onData = (chunk: Buffer) => {
      const status = reader.push(chunk, cfg);
      if (status === Status.Partial) return;
      cleanup();
      stream.pause();
      if (status === Status.Error) {
        reject(errorFromParse(cfg.out));
        return;
      }
      const buf = reader.buffer!;
      const headers = headersFromParse(buf, cfg.out, 0, false, options.headerEncoding);
      const rest = buf.subarray(cfg.out[OUT_HEADER_END]!);
      resolve({ headers, body: bodyReader(stream, headers.contentLength, rest) });
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
    if (stream.destroyed) onClose();
  });
}

/** A Readable of exactly `length` bytes taken from `source`, starting with `first`. */
function bodyReader(source: Readable, length: number, first: Buffer): Readable {
  let left = length;
  let attached = false;
  const body = new Readable({
    read() {
      if (left === 0) return;
      if (!attached) {
        attached = true;
        source.on('data', onData);
        source.once('end', onEnd);
        source.once('error', onError);
      }
      source.resume();
    },
  });
  const detach = () => {
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('error', onError);
    source.pause();
  };
  const take = (chunk: Buffer): boolean => {
    if (chunk.length >= left) {
      const mine = chunk.subarray(0, left);
      const extra = chunk.subarray(left);
      left = 0;
      if (mine.length > 0) body.push(mine);
      body.push(null);
      if (attached) detach();
      if (extra.length > 0) source.unshift(extra);
      return false;
    }
    left -= chunk.length;
    return body.push(chunk);
  };
  const onData = (chunk: Buffer) => {
    if (!take(chunk)) source.pause();
  };
  const onEnd = () => {
    detach();
    if (left > 0) body.destroy(new ScgiError('ERR_SCGI_BODY_TRUNCATED', `the stream ended ${left} bytes before the end of the body`));
  };
  const onError = (err: Error) => {
    detach();
    body.destroy(err);
  };
  if (left === 0) {
    body.push(null);
    if (first.length > 0) source.unshift(first);
  } else if (first.length > 0) {
    take(first);
  }
  return body;
}
