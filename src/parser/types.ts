/**
 * The parser contract shared by both backends (the pure-TS parser in `js.ts`
 * and the Rust addon loaded by `native.ts`). Everything here is numbers, so
 * that one call into the addon crosses the N-API boundary once and creates no
 * JS strings. `crates/scgi-parser` mirrors these constants exactly; the
 * differential test in `test/parser.differential.test.ts` holds the two to it.
 */

/** Result of one `parse` call. */
export const Status = {
  /** A whole netstring is in the buffer; `OUT_HEADER_END` is the body's first byte. */
  Complete: 0,
  /** More bytes are needed; `OUT_HEADER_END` is the total byte count needed when known, else 0. */
  Partial: 1,
  /** The input can never become a valid request; `OUT_CODE` says why. */
  Error: 2,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

/**
 * Numeric error codes. Stable: the Rust `Error` enum has the same
 * discriminants, and `CODE_NAMES` maps each to its `ERR_SCGI_*` string.
 */
export const Code = {
  None: 0,
  /** Netstring length not digits, a leading zero, more than 7 digits, missing `:` or missing `,`. */
  BadNetstring: 1,
  /** Netstring length larger than `maxHeaderSize`. */
  HeaderTooLarge: 2,
  /** Header block not a sequence of NUL-terminated name/value pairs, or an empty name. */
  BadHeaders: 3,
  /** The first pair is not `CONTENT_LENGTH` (or the block is empty). */
  MissingContentLength: 4,
  /** `CONTENT_LENGTH` is not 1*DIGIT or is above `Number.MAX_SAFE_INTEGER`. */
  BadContentLength: 5,
  /** More pairs than `maxHeaders`. */
  TooManyHeaders: 6,
  /** strict: a name occurs twice. */
  DuplicateHeader: 7,
  /** strict: no `SCGI` pair with value `1`. */
  MissingScgi: 8,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

/** `ERR_SCGI_*` string for each numeric code (index = code). */
export const CODE_NAMES = [
  '',
  'ERR_SCGI_BAD_NETSTRING',
  'ERR_SCGI_HEADER_TOO_LARGE',
  'ERR_SCGI_BAD_HEADERS',
  'ERR_SCGI_MISSING_CONTENT_LENGTH',
  'ERR_SCGI_BAD_CONTENT_LENGTH',
  'ERR_SCGI_TOO_MANY_HEADERS',
  'ERR_SCGI_DUPLICATE_HEADER',
  'ERR_SCGI_MISSING_SCGI',
] as const;

/**
 * Layout of the caller-provided `Uint32Array` `out`.
 * Slots 0..OUT_PAIRS hold scalars; then `PAIR_STRIDE` slots per pair:
 * name start, name end, value start, value end (byte offsets into the parsed
 * buffer, end exclusive), and the name's id in `KNOWN_NAMES` (0 = not known).
 */
export const OUT_CODE = 0;
export const OUT_HEADER_END = 1;
export const OUT_PAIR_COUNT = 2;
/** CONTENT_LENGTH = OUT_CL_HIGH * 2^32 + OUT_CL_LOW. */
export const OUT_CL_LOW = 3;
export const OUT_CL_HIGH = 4;
/** Index of the `SCGI` pair, or 0xffffffff when absent. */
export const OUT_SCGI_INDEX = 5;
export const OUT_PAIRS = 8;
export const PAIR_STRIDE = 5;
export const NO_INDEX = 0xffffffff;

/** Flag bits passed to `parse`. */
export const FLAG_STRICT = 1;

/** Largest netstring length the grammar allows (7 digits). */
export const MAX_NETSTRING_LENGTH = 9_999_999;

/** Size of an `out` array able to hold `maxHeaders` pairs. */
export function outSize(maxHeaders: number): number {
  return OUT_PAIRS + PAIR_STRIDE * maxHeaders;
}

/** One parser backend: the same function in TS and in the addon. */
export interface ParserBackend {
  readonly name: 'js' | 'native';
  /**
   * Parse the start of `buf` as an SCGI netstring. Writes results into `out`
   * (see the `OUT_*` slots) and returns the `Status`. Pure: the result depends
   * only on the bytes, the limits and the flags; a buffer that was `Error`
   * stays `Error` (same code) however many bytes are appended.
   * `out.length` must be at least `outSize(maxHeaders)`.
   */
  parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize: number, maxHeaders: number, flags: number): Status;
}

/**
 * Standard CGI/SCGI names (what nginx, Apache httpd and lighttpd send, and
 * the common HTTP_* headers), recognised while scanning and reported as an id
 * (index in this table) so that the common request allocates no name
 * strings. Index 0 is "not a known name". Append only: the ids are part of the
 * contract with the addon (crates/scgi-parser/src/names.rs has the same list).
 */
export const KNOWN_NAMES = [
  '',
  'CONTENT_LENGTH',
  'SCGI',
  'REQUEST_METHOD',
  'REQUEST_URI',
  'QUERY_STRING',
  'CONTENT_TYPE',
  'DOCUMENT_URI',
  'DOCUMENT_ROOT',
  'SERVER_PROTOCOL',
  'REQUEST_SCHEME',
  'HTTPS',
  'GATEWAY_INTERFACE',
  'SERVER_SOFTWARE',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'REMOTE_USER',
  'SERVER_ADDR',
  'SERVER_PORT',
  'SERVER_NAME',
  'SCRIPT_NAME',
  'SCRIPT_FILENAME',
  'PATH_INFO',
  'PATH_TRANSLATED',
  'REDIRECT_STATUS',
  'SERVER_SIGNATURE',
  'SERVER_ADMIN',
  'CONTEXT_PREFIX',
  'CONTEXT_DOCUMENT_ROOT',
  'PATH',
  'AUTH_TYPE',
  'HTTP_HOST',
  'HTTP_USER_AGENT',
  'HTTP_ACCEPT',
  'HTTP_ACCEPT_LANGUAGE',
  'HTTP_ACCEPT_ENCODING',
  'HTTP_ACCEPT_CHARSET',
  'HTTP_COOKIE',
  'HTTP_REFERER',
  'HTTP_CONNECTION',
  'HTTP_CACHE_CONTROL',
  'HTTP_PRAGMA',
  'HTTP_UPGRADE_INSECURE_REQUESTS',
  'HTTP_CONTENT_LENGTH',
  'HTTP_CONTENT_TYPE',
  'HTTP_TRANSFER_ENCODING',
  'HTTP_AUTHORIZATION',
  'HTTP_ORIGIN',
  'HTTP_IF_NONE_MATCH',
  'HTTP_IF_MODIFIED_SINCE',
  'HTTP_X_FORWARDED_FOR',
  'HTTP_X_FORWARDED_PROTO',
  'HTTP_X_FORWARDED_HOST',
  'HTTP_X_REAL_IP',
  'HTTP_X_REQUESTED_WITH',
  'HTTP_DNT',
  'HTTP_SEC_FETCH_SITE',
  'HTTP_SEC_FETCH_MODE',
  'HTTP_SEC_FETCH_DEST',
  'HTTP_SEC_FETCH_USER',
  'HTTP_SEC_CH_UA',
  'HTTP_SEC_CH_UA_MOBILE',
  'HTTP_SEC_CH_UA_PLATFORM',
  'HTTP_PRIORITY',
  'HTTP_TE',
  'HTTP_RANGE',
  'HTTP_IF_RANGE',
  'HTTP_EXPECT',
  'HTTP_UPGRADE',
] as const;

/** Id of `CONTENT_LENGTH` in `KNOWN_NAMES`. */
export const ID_CONTENT_LENGTH = 1;
/** Id of `SCGI` in `KNOWN_NAMES`. */
export const ID_SCGI = 2;
