/** The errors this package throws, rejects with or emits carry one of these codes; docs/errors.md lists each, and the few errors that are deliberately not `ScgiError`s. */
export type ScgiErrorCode =
  | 'ERR_SCGI_BAD_NETSTRING'
  | 'ERR_SCGI_HEADER_TOO_LARGE'
  | 'ERR_SCGI_BAD_HEADERS'
  | 'ERR_SCGI_MISSING_CONTENT_LENGTH'
  | 'ERR_SCGI_BAD_CONTENT_LENGTH'
  | 'ERR_SCGI_TOO_MANY_HEADERS'
  | 'ERR_SCGI_DUPLICATE_HEADER'
  | 'ERR_SCGI_MISSING_SCGI'
  | 'ERR_SCGI_BODY_TOO_LARGE'
  | 'ERR_SCGI_BODY_TRUNCATED'
  | 'ERR_SCGI_HEADER_TIMEOUT'
  | 'ERR_SCGI_REQUEST_TIMEOUT'
  | 'ERR_SCGI_INCOMPLETE_HEADER'
  | 'ERR_SCGI_INVALID_RESPONSE_HEADER'
  | 'ERR_SCGI_HEADERS_SENT'
  | 'ERR_SCGI_NO_RESPONSE'
  | 'ERR_SCGI_BAD_RESPONSE'
  | 'ERR_SCGI_RESPONSE_TOO_LARGE'
  | 'ERR_SCGI_RESPONSE_TIMEOUT'
  | 'ERR_SCGI_INVALID_VARIABLE'
  | 'ERR_SCGI_FD_LIMIT'
  | 'ERR_SCGI_BODY_TIMEOUT'
  | 'ERR_SCGI_ADDRESS_IN_USE'
  | 'ERR_SCGI_ADDRESS_NOT_SOCKET'
  | 'ERR_SCGI_INVALID_ADDRESS'
  | 'ERR_SCGI_INVALID_OPTION'
  | 'ERR_SCGI_APP_LOAD'
  | 'ERR_SCGI_INVALID_APP'
  | 'ERR_SCGI_UNSAFE_SOCKET_DIR'
  | 'ERR_SCGI_NATIVE_UNAVAILABLE'
  | 'ERR_SCGI_LISTEN_FAILED'
  | 'ERR_SCGI_SOCKET_FILE'
  | 'ERR_SCGI_WORKER_FAILED'
  | 'ERR_SCGI_WORKER_TIMEOUT'
  | 'ERR_SCGI_NOT_SUPERVISED'
  | 'ERR_SCGI_CONNECTION_CLOSED'
  | 'ERR_SCGI_STATUS_UNAVAILABLE'
  | 'ERR_SCGI_HANDLER';

export class ScgiError extends Error {
  readonly code: ScgiErrorCode;

  constructor(code: ScgiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ScgiError';
    this.code = code;
  }
}

/** A failed bind or listen on `what` (a path, host:port or fd), as `serve` rejects with it on either transport. */
export function listenError(err: NodeJS.ErrnoException, what: string): ScgiError {
  if (err.code === 'EADDRINUSE') return new ScgiError('ERR_SCGI_ADDRESS_IN_USE', `address in use: ${what}`, { cause: err });
  if (err.code === 'EACCES') return new ScgiError('ERR_SCGI_INVALID_ADDRESS', `permission denied listening on ${what}`, { cause: err });
  return new ScgiError('ERR_SCGI_LISTEN_FAILED', `cannot listen on ${what}: ${err.message}`, { cause: err });
}

/** No complete SCGI header within `headerTimeout` ms (the lifecycle's timer, the native engine's reject before a connection exists, `readHeader`'s timer). */
export function headerTimeoutError(headerTimeout: number): ScgiError {
  return new ScgiError('ERR_SCGI_HEADER_TIMEOUT', `no complete SCGI header within headerTimeout (${headerTimeout} ms)`);
}

/** The peer went away before the SCGI header was complete: `ending` says how (the lifecycle and the native engine's reject: the front closed; `readHeader`: the stream closed or ended). */
export function incompleteHeaderError(ending = 'the front closed'): ScgiError {
  return new ScgiError('ERR_SCGI_INCOMPLETE_HEADER', `${ending} before the SCGI header was complete`);
}
