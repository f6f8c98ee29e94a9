/**
 * From CGI variables back to HTTP: what the `scgi/http` and `scgi/fetch`
 * adapters give an app as `req.headers`, `req.url`, `request.url`.
 *
 * The three fronts send the same request differently (see
 * test/fixtures/index.json, captured from each):
 * - nginx repeats a name when the browser repeats a header (two
 *   `HTTP_COOKIE` pairs); Apache joins them with ", " (even cookies), lighttpd
 *   with ", " (cookies with "; ").
 * - nginx with `include scgi_params` sends CONTENT_TYPE (maybe empty) *and*
 *   HTTP_CONTENT_TYPE, CONTENT_LENGTH *and* HTTP_CONTENT_LENGTH; with
 *   `scgi_request_buffering off` its HTTP_CONTENT_LENGTH is the browser's
 *   size while CONTENT_LENGTH (what follows on the socket) may be smaller.
 *   Without `scgi_params` it sends only CONTENT_LENGTH and HTTP_*.
 * - The path: REQUEST_URI (raw, with the query) from all three with their
 *   usual configs; Apache also SCRIPT_NAME (decoded), lighttpd SCRIPT_NAME +
 *   PATH_INFO (decoded), nginx DOCUMENT_URI (decoded).
 */
import type { ScgiHeaders } from './scgi-headers.ts';

/**
 * CGI variable for a header name, the inverse of {@link headerName}:
 * `X-Forwarded-For` → `HTTP_X_FORWARDED_FOR`, `Content-Type` → `CONTENT_TYPE`,
 * `Content-Length` → `CONTENT_LENGTH` (for the `scgi/client` requester and
 * the development front).
 */
export function cgiVariable(header: string): string {
  const upper = header.toUpperCase().replace(/-/g, '_');
  return upper === 'CONTENT_TYPE' || upper === 'CONTENT_LENGTH' ? upper : `HTTP_${upper}`;
}

/**
 * Header name for a CGI variable: `HTTP_X_FORWARDED_FOR` → `x-forwarded-for`,
 * `CONTENT_TYPE` → `content-type`, `CONTENT_LENGTH` → `content-length`;
 * undefined for any other variable (REQUEST_METHOD, SCGI, ...: not headers).
 * `_` always becomes `-`: a browser header spelled with `_` is not
 * recoverable (nginx drops those by default, `underscores_in_headers off`).
 */
export function headerName(cgiName: string): string | undefined {
  if (cgiName.startsWith('HTTP_')) return cgiName.slice(5).toLowerCase().replaceAll('_', '-');
  if (cgiName === 'CONTENT_TYPE') return 'content-type';
  if (cgiName === 'CONTENT_LENGTH') return 'content-length';
  return undefined;
}

/** Names where Node's http keeps the first value and drops repeats (lib/_http_incoming.js). */
const FIRST_WINS = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'host',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);

/** Methods whose requests normally carry a body: they get `content-length` even when it is 0. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * The request's HTTP headers, as Node's `http` would give them
 * (`IncomingMessage.headers` and `.rawHeaders`):
 *
 * - every `HTTP_*` variable, named with {@link headerName}, in wire order;
 * - `content-type`: CONTENT_TYPE when it is non-empty, else HTTP_CONTENT_TYPE
 *   (nginx sends both, and an empty CONTENT_TYPE when there is none);
 * - `content-length`: always CONTENT_LENGTH, the number of body bytes that
 *   follow on the socket, i.e. what the app will read. HTTP_CONTENT_LENGTH is
 *   never used (nginx with `scgi_request_buffering off` gets it wrong for
 *   the SCGI body). It is left out when it is 0, the method is not POST, PUT
 *   or PATCH, and the browser sent no Content-Length (a GET has none, as
 *   with Node's http);
 * - `transfer-encoding` is left out: the fronts de-chunk uploads and send the
 *   real CONTENT_LENGTH (nginx still passes HTTP_TRANSFER_ENCODING: chunked,
 *   which would contradict it);
 * - repeated names (nginx sends one pair per browser header) merge as in
 *   Node's http: `set-cookie` becomes an array, `cookie` joins with "; ",
 *   single-valued fields (host, content-type, user-agent, authorization,
 *   ...) keep the first, the rest join with ", ". Apache and lighttpd
 *   already joined them, so their values pass through as they are;
 * - `rawHeaders` is the flat `[name, value, ...]` list in wire order with
 *   nginx's repeated pairs kept separate; names are lower-case (the browser's
 *   spelling is lost in CGI).
 *
 * Values are decoded as the server's `headerEncoding` says (latin1 by
 * default, as Node's http does). `headers` has Object.prototype, as
 * node:http's has.
 */
export function httpHeaders(headers: ScgiHeaders): { headers: Record<string, string | string[]>; rawHeaders: string[] } {
  // A plain object, as node:http's (frameworks call out.hasOwnProperty):
  // names never start with `__` (underscores became dashes), and addHeader
  // looks at own properties only, so `constructor` is a header like any other.
  const out: Record<string, string | string[]> = {};
  const raw: string[] = [];
  const n = headers.length;

  // content-type: the CGI variable if it says something, else the HTTP_ copy.
  let typeAt = headers.indexOf('CONTENT_TYPE');
  if (typeAt !== -1 && headers.rawValue(typeAt).length === 0) typeAt = -1;
  const useHttpType = typeAt === -1;
  const method = headers.get('REQUEST_METHOD') ?? 'GET';
  const withLength = headers.contentLength > 0 || BODY_METHODS.has(method) || headers.has('HTTP_CONTENT_LENGTH');

  for (let i = 0; i < n; i++) {
    const cgi = headers.name(i);
    switch (cgi) {
      case 'CONTENT_LENGTH':
        if (i === 0 && withLength) addHeader(out, raw, 'content-length', String(headers.contentLength));
        continue;
      case 'CONTENT_TYPE':
        if (i === typeAt) addHeader(out, raw, 'content-type', headers.value(i));
        continue;
      case 'HTTP_CONTENT_LENGTH':
      case 'HTTP_TRANSFER_ENCODING':
        continue;
      case 'HTTP_CONTENT_TYPE':
        if (useHttpType && out['content-type'] === undefined) addHeader(out, raw, 'content-type', headers.value(i));
        continue;
    }
    if (!cgi.startsWith('HTTP_')) continue;
    let name = HEADER_NAMES.get(cgi);
    if (name === undefined) {
      name = headerName(cgi)!;
      if (HEADER_NAMES.size < HEADER_NAMES_MAX) HEADER_NAMES.set(cgi, name);
    }
    addHeader(out, raw, name, headers.value(i));
  }
  return { headers: out, rawHeaders: raw };
}

/**
 * `HTTP_USER_AGENT` → `user-agent`, remembered: the same few names come with
 * every request. Bounded, so that names a client makes up cannot grow it.
 */
const HEADER_NAMES = new Map<string, string>();
const HEADER_NAMES_MAX = 256;

/** One header into `headers`/`rawHeaders`, repeats merged as Node's http merges them. */
function addHeader(out: Record<string, string | string[]>, raw: string[], name: string, value: string): void {
  raw.push(name, value);
  const prev = Object.hasOwn(out, name) ? out[name] : undefined;
  if (prev === undefined) {
    out[name] = name === 'set-cookie' ? [value] : value;
  } else if (name === 'set-cookie') {
    (prev as string[]).push(value);
  } else if (name === 'cookie') {
    out[name] = `${prev}; ${value}`;
  } else if (!FIRST_WINS.has(name)) {
    out[name] = `${prev}, ${value}`;
  }
}

export interface RequestTarget {
  /** REQUEST_METHOD; GET when absent (nginx without scgi_params). */
  method: string;
  /** Path and query as the browser sent them (`/a%20b?x=1`); for an absolute-form target, its path and query. */
  url: string;
  /** `url` before the `?`. */
  path: string;
  /** `url` after the `?`, without it; '' when none. */
  query: string;
  scheme: 'http' | 'https';
  /** HTTP_HOST when it is a host[:port] ({@link isAuthority}), else SERVER_NAME[:SERVER_PORT], else SERVER_ADDR[:SERVER_PORT], else 'localhost'. */
  host: string;
  /** SERVER_PROTOCOL without `HTTP/` ('1.1', '1.0', '2.0'); '1.1' when absent. */
  httpVersion: string;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  serverPort: number | undefined;
}

/** A byte that may stay as it is in a URL path (RFC 3986 pchar and '/', minus '%'). */
function pathSafe(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || "-._~!$&'()*+,;=:@/".includes(String.fromCharCode(b));
}

/** Percent-encode a decoded path (SCRIPT_NAME, PATH_INFO, DOCUMENT_URI are decoded by the fronts), byte by byte. */
function encodePath(bytes: Buffer): string {
  let s = '';
  for (const b of bytes) s += pathSafe(b) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return s;
}

function rawOf(headers: ScgiHeaders, name: string): Buffer | undefined {
  const i = headers.indexOf(name);
  return i === -1 ? undefined : headers.rawValue(i);
}

function port(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,5}$/.test(value)) return undefined;
  const p = Number(value);
  return p <= 65535 ? p : undefined;
}

const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*(.*)$/s;
// reg-name (RFC 3986 unreserved and sub-delims, no pct-encoding) or an IPv6
// literal in brackets, then an optional port.
const AUTHORITY = /^(?:[A-Za-z0-9._~!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/;

/**
 * True when `value` is a host[:port] (what the Host header should be), and
 * nothing more: no userinfo (`@`), no `/`, `\`, `?`, `#`, spaces or
 * control characters, balanced brackets, a port up to 65535.
 */
export function isAuthority(value: string): boolean {
  const m = AUTHORITY.exec(value);
  if (m === null) return false;
  if (m[1] !== undefined && Number(m[1]) > 65535) return false;
  if (value.charCodeAt(0) === 0x5b) {
    // an IPv6 literal: let the URL parser say whether it is one
    try {
      return new URL(`http://${value}/`).pathname === '/';
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Where the request goes, from the CGI variables:
 * - `url`: REQUEST_URI (raw, as the browser sent it; nginx, Apache and
 *   lighttpd all send it). Without it: SCRIPT_NAME + PATH_INFO (Apache,
 *   lighttpd), else DOCUMENT_URI (nginx), percent-encoded again since the
 *   fronts decode those, plus `?QUERY_STRING` when non-empty; else `/`.
 * - `scheme`: REQUEST_SCHEME, else `https` when HTTPS is `on` or `1`.
 * - `host`: see {@link RequestTarget.host}; the port is left out when it is
 *   the scheme's default.
 */
export function requestTarget(headers: ScgiHeaders): RequestTarget {
  const method = headers.get('REQUEST_METHOD') || 'GET';
  const query0 = headers.get('QUERY_STRING') ?? '';
  let url = headers.get('REQUEST_URI') ?? '';
  if (url !== '' && url.charCodeAt(0) !== 0x2f) {
    // absolute-form (`GET http://host/path`): the path and query are what
    // follows the authority, as nginx routes it. Anything else (`*`) stays.
    const m = ABSOLUTE_FORM.exec(url);
    if (m !== null) url = m[1] === '' ? '/' : m[1]!.startsWith('?') ? `/${m[1]}` : m[1]!;
  }
  if (url === '') {
    const script = rawOf(headers, 'SCRIPT_NAME');
    const info = rawOf(headers, 'PATH_INFO');
    const doc = rawOf(headers, 'DOCUMENT_URI');
    let path = '';
    if (script !== undefined || info !== undefined) path = encodePath(Buffer.concat([script ?? Buffer.alloc(0), info ?? Buffer.alloc(0)]));
    else if (doc !== undefined) path = encodePath(doc);
    if (!path.startsWith('/')) path = `/${path}`;
    url = query0 === '' ? path : `${path}?${query0}`;
  }
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q + 1);

  const requestScheme = headers.get('REQUEST_SCHEME')?.toLowerCase();
  const https = headers.get('HTTPS')?.toLowerCase();
  const scheme: 'http' | 'https' = requestScheme === 'https' || requestScheme === 'http' ? requestScheme : https === 'on' || https === '1' ? 'https' : 'http';

  const serverPort = port(headers.get('SERVER_PORT'));
  // The Host header goes into the authority only when it is one: a
  // hostile `example.com\admin?`, `evil.com#` or `a@evil.com` would move
  // the request's own path into the authority, query or fragment.
  let host = headers.get('HTTP_HOST') ?? '';
  if (host !== '' && !isAuthority(host)) host = '';
  if (host === '') {
    const name = headers.get('SERVER_NAME') || headers.get('SERVER_ADDR') || '';
    if (name === '') host = 'localhost';
    else {
      const bracketed = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name;
      const isDefault = serverPort === undefined || serverPort === (scheme === 'https' ? 443 : 80);
      host = isDefault ? bracketed : `${bracketed}:${serverPort}`;
    }
  }

  const protocol = headers.get('SERVER_PROTOCOL') ?? '';
  const httpVersion = protocol.toUpperCase().startsWith('HTTP/') ? protocol.slice(5) : '1.1';

  return {
    method,
    url,
    path,
    query,
    scheme,
    host,
    httpVersion,
    remoteAddress: headers.get('REMOTE_ADDR') || undefined,
    remotePort: port(headers.get('REMOTE_PORT')),
    serverPort,
  };
}
