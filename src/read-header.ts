/**
 * `readHeader(stream)`: the SCGI request parser for sockets you manage
 * yourself (`scgi-read-header` in `(sph scgi)`).
 */
import { Readable } from 'node:stream';
import { ScgiError } from './errors.ts';
import { HeaderBuffer } from './header-buffer.ts';
import { errorFromParse, headersFromParse, type ScgiHeaders, type HeaderEncoding } from './headers.ts';
import { OUT_HEADER_END, Status, outSize, parse } from './parser/index.ts';

export interface ReadHeaderOptions {
  maxHeaderSize?: number;
  maxHeadersCount?: number;
  strict?: boolean;
  headerEncoding?: HeaderEncoding;
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
  const maxHeaderSize = options.maxHeaderSize ?? 65536;
  const maxHeadersCount = options.maxHeadersCount ?? 2000;
  // Same ranges as serve(): both parsers take these as unsigned 32-bit integers.
  if (!Number.isInteger(maxHeaderSize) || maxHeaderSize < 1 || maxHeaderSize > 9_999_999) {
    return Promise.reject(new ScgiError('ERR_SCGI_INVALID_OPTION', `maxHeaderSize must be an integer from 1 to 9999999`));
  }
  if (!Number.isInteger(maxHeadersCount) || maxHeadersCount < 1 || maxHeadersCount > 1_000_000) {
    return Promise.reject(new ScgiError('ERR_SCGI_INVALID_OPTION', `maxHeadersCount must be an integer from 1 to 1000000`));
  }
  const out = new Uint32Array(outSize(maxHeadersCount));
  return new Promise((resolve, reject) => {
    const bytes = new HeaderBuffer();
    let need = 0;
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onEnd = () => {
      cleanup();
      reject(new ScgiError('ERR_SCGI_INCOMPLETE_HEADER', 'the stream ended before the SCGI header was complete'));
    };
    const onData = (chunk: Buffer) => {
      let buf = chunk;
      const gathering = bytes.gathering || chunk.length < need;
      if (gathering) {
        buf = bytes.append(chunk, need);
        if (buf.length < need) return;
      }
      const status = parse(buf, out, maxHeaderSize, maxHeadersCount, options.strict ? 1 : 0);
      if (status === Status.Partial) {
        need = out[OUT_HEADER_END]!;
        if (!gathering) bytes.append(buf, need);
        return;
      }
      bytes.reset();
      cleanup();
      stream.pause();
      if (status === Status.Error) {
        reject(errorFromParse(out));
        return;
      }
      const headers = headersFromParse(buf, out, options.headerEncoding);
      const rest = buf.subarray(out[OUT_HEADER_END]!);
      resolve({ headers, body: bodyReader(stream, headers.contentLength, rest) });
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
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
