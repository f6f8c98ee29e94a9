/**
 * The SCGI/CGI wire format, written once: encode an SCGI request (the
 * netstring of CGI variables, then the body) and parse a CGI response head
 * (`Status: 200 OK`, fields, blank line). Used by the requester
 * (`scgi/client`, src/client/request.ts), the development front
 * (src/cli/dev-front.ts) and `inject` (src/server/inject.ts).
 */
import { ScgiError } from '../errors.ts';

/** A CGI variable: name and value, in the order they are sent. */
export type CgiVariable = readonly [name: string, value: string];

const NUL = 0;

/**
 * Encode an SCGI request: `<len>:` + `NAME\0value\0`... + `,` + body.
 * `vars` must start with CONTENT_LENGTH (the SCGI spec); names are written as
 * latin1, values in `valueEncoding` (default utf8; the development front
 * passes latin1 to forward the bytes it received). Throws
 * `ERR_SCGI_INVALID_VARIABLE` for an empty name or a NUL anywhere: a NUL is
 * the separator, so one inside a value would start a forged variable.
 */
export function encodeScgiRequest(vars: Iterable<CgiVariable>, body?: Uint8Array | null, valueEncoding: BufferEncoding = 'utf8'): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  for (const [name, value] of vars) {
    if (name === '') throw new ScgiError('ERR_SCGI_INVALID_VARIABLE', 'a CGI variable with an empty name');
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, valueEncoding);
    if (n.includes(NUL) || v.includes(NUL)) {
      throw new ScgiError('ERR_SCGI_INVALID_VARIABLE', `CGI variable ${JSON.stringify(name.replace(/\0/g, '\\0'))} contains a NUL byte, which would split it`);
    }
    parts.push(n, ZERO, v, ZERO);
    size += n.length + v.length + 2;
  }
  const prefix = Buffer.from(`${size}:`, 'latin1');
  const bodyBytes = body == null || body.length === 0 ? null : body;
  return Buffer.concat(bodyBytes === null ? [prefix, ...parts, COMMA] : [prefix, ...parts, COMMA, bodyBytes]);
}

const ZERO = Buffer.from([NUL]);
const COMMA = Buffer.from(',', 'latin1');

/** `HTTP/1.1 200 OK` as a first response line (nph style): status and optional reason. */
export const STATUS_LINE = /^HTTP\/\d\.\d (\d{3})(?: (.*))?$/;
/** The value of a CGI `Status:` field: `200 OK`, `404`. */
const STATUS_VALUE = /^(\d{3})(?: (.*))?$/;

/** A parsed CGI response head. */
export interface ResponseHead {
  status: number;
  statusText: string;
  /** Response header fields in order, names as sent (`Status:` not included). */
  rawHeaders: [string, string][];
  /** Lower-case names; repeated fields joined with ', '. */
  headers: Record<string, string>;
  /** Where the body starts in the buffer that was parsed. */
  bodyStart: number;
}

/**
 * Parse a CGI response head from the start of `data`. Returns null while the
 * blank line has not arrived and `data` is within `maxHeaderSize`; throws
 * `ERR_SCGI_RESPONSE_TOO_LARGE` past it (so a reader never buffers more than
 * `maxHeaderSize` + one chunk of head), `ERR_SCGI_BAD_RESPONSE` for a line
 * that is not a field or a bad `Status:`. An `HTTP/1.x NNN` first line is
 * accepted too; `Location` without `Status` means 302 (RFC 3875 §6.2.3).
 */
export function parseResponseHead(data: Buffer, maxHeaderSize = Infinity): ResponseHead | null {
  let end = data.indexOf('\r\n\r\n');
  let sep = 4;
  const lf = data.indexOf('\n\n');
  if (lf !== -1 && (end === -1 || lf < end)) {
    end = lf;
    sep = 2;
  }
  if (end === -1 || end + sep > maxHeaderSize) {
    if (end !== -1 || data.length > maxHeaderSize) {
      throw new ScgiError('ERR_SCGI_RESPONSE_TOO_LARGE', `the response head is over maxHeaderSize (${maxHeaderSize} bytes)`);
    }
    return null;
  }
  const lines = data.toString('latin1', 0, end).split(/\r?\n/);
  let status = 200;
  let statusText = 'OK';
  const rawHeaders: [string, string][] = [];
  const first = STATUS_LINE.exec(lines[0] ?? '');
  let hadStatus = false;
  if (first) {
    status = Number(first[1]);
    statusText = first[2] ?? '';
    hadStatus = true;
    lines.shift();
  }
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i <= 0) throw new ScgiError('ERR_SCGI_BAD_RESPONSE', `bad response header line ${JSON.stringify(line)}`);
    const name = line.slice(0, i);
    const value = line.slice(i + 1).trim();
    if (!hadStatus && name.length === 6 && name.toLowerCase() === 'status') {
      const m = STATUS_VALUE.exec(value);
      if (!m) throw new ScgiError('ERR_SCGI_BAD_RESPONSE', `bad Status: ${JSON.stringify(value)}`);
      status = Number(m[1]);
      statusText = m[2] ?? '';
      hadStatus = true;
      continue;
    }
    rawHeaders.push([name, value]);
  }
  if (!hadStatus && rawHeaders.some(([n]) => n.toLowerCase() === 'location')) {
    status = 302;
    statusText = 'Found';
  }
  const headers: Record<string, string> = {};
  for (const [n, v] of rawHeaders) {
    const k = n.toLowerCase();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  return { status, statusText, rawHeaders, headers, bodyStart: end + sep };
}

/** A whole CGI response: the head and the body bytes after it. */
export interface WholeResponse {
  status: number;
  statusText: string;
  rawHeaders: [string, string][];
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Parse a whole CGI response (everything the peer sent before it closed).
 * `ERR_SCGI_NO_RESPONSE` when there is not a byte, `ERR_SCGI_BAD_RESPONSE`
 * when the head has no blank line or a bad line.
 */
export function parseResponse(data: Buffer, maxHeaderSize = Infinity): WholeResponse {
  if (data.length === 0) throw new ScgiError('ERR_SCGI_NO_RESPONSE', 'empty response: the server closed the connection without sending a byte');
  const head = parseResponseHead(data, maxHeaderSize);
  if (head === null) throw new ScgiError('ERR_SCGI_BAD_RESPONSE', 'the response ended before the blank line after its head');
  const { bodyStart, ...rest } = head;
  return { ...rest, body: data.subarray(bodyStart) };
}
