/**
 * `serve()` options: the schema (`ServeOptions`), the defaults, the ranges,
 * and `normalizeOptions`, which checks them once and returns the
 * `NormalizedOptions` every other module reads. `readHeader` checks its
 * header limits with the same `headerLimits`.
 */
import type { ListenOptions, Server as NetServer, Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolveGroup } from './address.ts';
import { ScgiError } from './errors.ts';
import type { HeaderEncoding } from './protocol/scgi-headers.ts';
import { MAX_NETSTRING_LENGTH } from './parser/types.ts';
import type { ScgiClient } from './connection/scgi-client.ts';
import { reportSlowRequest, type AccessLogEntry, type MonitorOptions, type SlowRequest } from './status/monitor.ts';

export interface ServeOptions {
  /**
   * Where to listen. A leading `/` is a unix socket; `[::1]:8000`, `[::1]` or
   * a string with several `:` is IPv6; otherwise IPv4 or a host name, with an
   * optional `:port`. Also a `net.ListenOptions`. Default: `defaultAddress()`
   * (a unix socket), or 127.0.0.1 when only `port` is given.
   */
  address?: string | ListenOptions;
  /** TCP port when the address has none. Default 6500. */
  port?: number;
  /**
   * Listen on this instead: a `net.Server` (listening or not), an inherited
   * descriptor `{ fd }`, or `'systemd'` for socket activation (LISTEN_FDS).
   */
  socket?: NetServer | { fd: number } | 'systemd';
  /** Worker processes (node:cluster, each accepting on the shared socket). `true` = available cores. Default 1: in process. */
  parallelism?: number | true;
  /**
   * What carries the connections: `'native'` (the addon accepts, reads and
   * writes on Linux; src/transport/native.ts) or `'net'` (`net.Socket`).
   * Default: the `SCGI_TRANSPORT` environment variable, else `'native'` where
   * the addon has it (Linux; not with `SCGI_PARSER=js`), else `'net'`.
   * `'native'` falls back to `'net'` where sockets are handed to us (`socket`
   * as a `net.Server`, `listen`/`createServer` hooks); it throws
   * `ERR_SCGI_NATIVE_UNAVAILABLE` when the addon has no native transport.
   * With `parallelism` the primary chooses for its workers (src/server/cluster.ts).
   * `server.transport` says which is in use.
   */
  transport?: 'native' | 'net';
  /**
   * Catch handler errors (sync throws, rejected promises): report to
   * `onError`, answer `Status: 500` if nothing was written, keep serving.
   * `false`, or a predicate returning false, rethrows (the process crashes).
   * Default true.
   */
  catchErrors?: boolean | ((err: unknown) => boolean);
  /** Called with each caught handler error. Default: one line on stderr. */
  onError?: (err: Error, client: ScgiClient | null) => void;
  /** Replace how the listening socket is made: called instead of `server.listen(options)`. */
  listen?: (server: NetServer, options: ListenOptions) => void | Promise<void>;
  /** Replace how connections are accepted: return a `net.Server` that calls `onConnection` for each socket. */
  createServer?: (onConnection: (socket: Socket) => void) => NetServer;
  /** Permission bits of a unix socket this server creates. Default 0o660. */
  socketMode?: number;
  /** Group (name or gid) of a unix socket this server creates, e.g. 'www-data'. */
  socketGroup?: string | number;
  /** Largest header block in bytes. Default 65536. */
  maxHeaderSize?: number;
  /** Largest number of header pairs. Default 2000 (as Node's http). */
  maxHeadersCount?: number;
  /** Enforce the spec: reject duplicate names and a missing `SCGI: 1`. Default false (nginx sends both). */
  strict?: boolean;
  /** Largest CONTENT_LENGTH accepted; larger gets `Status: 413`. Default unlimited. */
  maxBodySize?: number;
  /** Most connections open at once; more get `Status: 503`. Default unlimited. */
  maxConnections?: number;
  /** ms for the whole header to arrive. Default 10000; 0 = none. */
  headerTimeout?: number;
  /** ms for the handler to finish its response. Default 0 = none. */
  requestTimeout?: number;
  /**
   * The request body must keep coming (like nginx's `client_body_timeout`):
   * in each `bodyTimeout` ms spent waiting for body bytes (time when the
   * handler is not reading does not count), at least one byte and
   * `minBodyRate` bytes/s on average, else the connection is closed
   * (`ERR_SCGI_BODY_TIMEOUT`, counted in `stats.timeouts`). Default 30000;
   * 0 = off.
   */
  bodyTimeout?: number;
  /** Bytes/s a request body must average over each `bodyTimeout` window. Default 256; 0 = only the idle check. */
  minBodyRate?: number;
  /**
   * ms that close() (and SIGTERM, and each SIGHUP reload step) waits for
   * requests in progress; connections with no request in progress are closed
   * at once. Default 30000.
   */
  shutdownTimeout?: number;
  /** ms to keep reading (and discarding) after the response, so the front sees no reset. Default 5000. */
  drainTimeout?: number;
  /** Most bytes discarded after a response (unread body, extra bytes). Default 16 MiB. */
  maxDrainSize?: number;
  /**
   * Treat a FIN from the peer after its whole request as a half-close and
   * still answer (for clients that shutdown(SHUT_WR) after sending). Default
   * false: no web server front half-closes, so a FIN before the response ends
   * means the browser went away; the handler's client emits 'close'.
   */
  allowHalfOpen?: boolean;
  /** How header values are decoded. Default 'latin1' (bytes as they came). */
  headerEncoding?: HeaderEncoding;
  /** Close gracefully and exit 0 on SIGTERM and SIGINT. Default true. */
  handleSignals?: boolean;
  /**
   * Serve the status endpoint (`GET /status` JSON, `GET /metrics` Prometheus
   * text) here: a unix socket path (created mode 0600, owned like the SCGI
   * socket) or `host:port` (`:port` or a bare port: 127.0.0.1). Served by the
   * process that called `serve` (with `parallelism`, the primary).
   * docs/deployment.md ("Monitoring"). Default: none.
   */
  statusAddress?: string;
  /**
   * One line per request: `true` writes it to stdout (Common Log Format plus
   * duration in ms and pid; src/status/monitor.ts), a function receives the
   * fields as an object. Written when the response finishes or the
   * connection ends. Default false.
   */
  accessLog?: boolean | ((entry: AccessLogEntry) => void);
  /** ms after which a request still in progress is reported once (`onSlowRequest`). Default 0: off. */
  slowRequestThreshold?: number;
  /** Called once for each request in progress longer than `slowRequestThreshold`. Default: one line on stderr. */
  onSlowRequest?: (req: SlowRequest) => void;
  /**
   * ms a worker's event loop may go without answering (no heartbeat, as
   * gunicorn's `timeout`) before it is killed and replaced, after one report
   * (pid, requests in progress, the JavaScript stack of the blocked loop) on
   * stderr and through `onError` (`ERR_SCGI_WORKER_TIMEOUT`). A loop that is
   * busy but turns (heavy load, 200 ms synchronous chunks, long GC) is never
   * killed: the heartbeat comes every second. With `parallelism` 1 a
   * watchdog thread does it in process: the report goes to stderr and the
   * process kills itself, for its supervisor (systemd `Restart=on-failure`)
   * to restart it; not while an inspector is attached. Default 30000; 0 =
   * off; else at least 2000 (two heartbeats).
   */
  workerTimeout?: number;
  /**
   * Replace a worker after it has served this many requests (plus a random
   * 0..`maxRequestsJitter`, so workers do not all go at once), as a SIGHUP
   * reload step does: the replacement listens before the old worker stops
   * accepting, the old one finishes its requests, and it is not a crash (no
   * backoff). Like uWSGI's `max-requests`, gunicorn's `max_requests`.
   * Needs `parallelism` > 1. Default 0 = never.
   */
  maxRequests?: number;
  /** Random extra requests (0..this) added to `maxRequests` in each worker. Default 0. */
  maxRequestsJitter?: number;
  /**
   * Replace a worker whose resident set size (RSS) exceeds this many bytes,
   * as `maxRequests` does (uWSGI's `reload-on-rss`, pm2's
   * `max_memory_restart`); checked at each heartbeat (every second). Needs
   * `parallelism` > 1. Default 0 = never.
   */
  maxRss?: number;
}

/** The defaults of the numeric options. */
export const DEFAULTS = {
  maxHeaderSize: 64 * 1024,
  maxHeadersCount: 2000,
  headerTimeout: 10_000,
  requestTimeout: 0,
  bodyTimeout: 30_000,
  minBodyRate: 256,
  shutdownTimeout: 30_000,
  drainTimeout: 5_000,
  maxDrainSize: 16 * 1024 * 1024,
  socketMode: 0o660,
  workerTimeout: 30_000,
} as const;

/** The smallest `workerTimeout` other than 0: two heartbeat intervals (src/supervision/heartbeat.ts). */
export const MIN_WORKER_TIMEOUT = 2000;

/**
 * The longest a Node timer can wait: a larger delay fires after 1 ms (with a
 * TimeoutOverflowWarning), so every millisecond option is checked against it.
 */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** Ranges of the header limits: both parsers take them as unsigned 32-bit integers. */
const MAX_HEADERS_COUNT = 1_000_000;

/** What one connection's lifecycle reads (a part of `NormalizedOptions`). */
/**
 * The period of the timer that checks deadlines (the in-process sweep, and
 * the native engine's for the timeouts it keeps itself): a fifth of the
 * shortest of `timeouts` that is set (0 is off), at least 5 ms, at most 1 s.
 */
export function sweepTick(timeouts: readonly number[]): number {
  const shortest = Math.min(...timeouts.filter((t) => t > 0), 10_000);
  return Math.max(5, Math.min(1000, Math.floor(shortest / 5)));
}

export interface LifecycleOptions {
  maxHeaderSize: number;
  maxHeadersCount: number;
  strict: boolean;
  maxBodySize: number;
  headerTimeout: number;
  requestTimeout: number;
  bodyTimeout: number;
  minBodyRate: number;
  drainTimeout: number;
  maxDrainSize: number;
  allowHalfOpen: boolean;
  headerEncoding: HeaderEncoding;
  catchErrors: boolean | ((err: unknown) => boolean);
  onError: (err: Error, client: ScgiClient | null) => void;
}

/** `ServeOptions` checked, with defaults filled in. */
export interface NormalizedOptions {
  /** What each connection reads. */
  conn: LifecycleOptions;
  parallelism: number;
  maxConnections: number;
  shutdownTimeout: number;
  socketMode: number;
  /** Numeric gid, if a group was asked for. */
  socketGroup: number | undefined;
  handleSignals: boolean;
  /** The transport asked for (option, else SCGI_TRANSPORT), or null for the default. */
  transport: 'native' | 'net' | null;
  /** The request monitor's settings; null when no option needs it (src/status/monitor.ts). */
  monitor: MonitorOptions | null;
  /** Where the status endpoint listens (src/status/server.ts), or null. */
  statusAddress: string | null;
  /** ms without a heartbeat before a worker is killed; 0 = off. */
  workerTimeout: number;
  /** `onError` was given (supervision reports go to it as well as to stderr). */
  userOnError: boolean;
  /** Requests after which a worker is replaced (0 = never), and the most random extra ones. */
  maxRequests: number;
  maxRequestsJitter: number;
  /** RSS in bytes over which a worker is replaced (0 = never). */
  maxRss: number;
}

/** The one range check of integer options: `serve`, the `scgi/client` requester and the CLI. */
export function isIntegerIn(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/** An integer option from `min` to `max`. Throws `ERR_SCGI_INVALID_OPTION`. */
export function checkInt(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!isIntegerIn(value, min, max)) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** A millisecond option: an integer from 0 to `MAX_TIMEOUT` (2^31−1). Throws `ERR_SCGI_INVALID_OPTION`. */
export function checkTimeout(name: string, value: unknown): number {
  return checkInt(name, value, 0, MAX_TIMEOUT);
}

/** `maxHeaderSize`, `maxHeadersCount`: defaults and ranges (shared by `serve` and `readHeader`). Throws `ERR_SCGI_INVALID_OPTION`. */
export function headerLimits(o: { maxHeaderSize?: number | undefined; maxHeadersCount?: number | undefined }): {
  maxHeaderSize: number;
  maxHeadersCount: number;
} {
  return {
    maxHeaderSize: checkInt('maxHeaderSize', o.maxHeaderSize ?? DEFAULTS.maxHeaderSize, 1, MAX_NETSTRING_LENGTH),
    maxHeadersCount: checkInt('maxHeadersCount', o.maxHeadersCount ?? DEFAULTS.maxHeadersCount, 1, MAX_HEADERS_COUNT),
  };
}

const KNOWN_OPTIONS = new Set([
  'address',
  'port',
  'socket',
  'parallelism',
  'catchErrors',
  'onError',
  'listen',
  'createServer',
  'socketMode',
  'socketGroup',
  'maxHeaderSize',
  'maxHeadersCount',
  'strict',
  'maxBodySize',
  'maxConnections',
  'headerTimeout',
  'requestTimeout',
  'bodyTimeout',
  'minBodyRate',
  'shutdownTimeout',
  'drainTimeout',
  'maxDrainSize',
  'headerEncoding',
  'handleSignals',
  'allowHalfOpen',
  'transport',
  'statusAddress',
  'accessLog',
  'slowRequestThreshold',
  'onSlowRequest',
  'workerTimeout',
  'maxRequests',
  'maxRequestsJitter',
  'maxRss',
]);

/** Check `options` and fill in the defaults. Throws `ERR_SCGI_INVALID_OPTION`. */
export function normalizeOptions(options: ServeOptions): NormalizedOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new ScgiError('ERR_SCGI_INVALID_OPTION', `unknown option ${JSON.stringify(key)}`);
  }
  const o = options;
  const catchErrors = o.catchErrors ?? true;
  if (typeof catchErrors !== 'boolean' && typeof catchErrors !== 'function') {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'catchErrors must be a boolean or a function');
  }
  const headerEncoding = o.headerEncoding ?? 'latin1';
  if (headerEncoding !== 'latin1' && headerEncoding !== 'utf8') {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `headerEncoding must be 'latin1' or 'utf8'`);
  }
  let parallelism = o.parallelism ?? 1;
  if (parallelism === true) parallelism = availableParallelism();
  checkInt('parallelism', parallelism, 1, 1024);
  const conn: LifecycleOptions = {
    ...headerLimits(o),
    strict: o.strict ?? false,
    maxBodySize: o.maxBodySize === undefined ? Infinity : checkInt('maxBodySize', o.maxBodySize, 0),
    headerTimeout: checkTimeout('headerTimeout', o.headerTimeout ?? DEFAULTS.headerTimeout),
    requestTimeout: checkTimeout('requestTimeout', o.requestTimeout ?? DEFAULTS.requestTimeout),
    bodyTimeout: checkTimeout('bodyTimeout', o.bodyTimeout ?? DEFAULTS.bodyTimeout),
    minBodyRate: checkInt('minBodyRate', o.minBodyRate ?? DEFAULTS.minBodyRate, 0),
    drainTimeout: checkTimeout('drainTimeout', o.drainTimeout ?? DEFAULTS.drainTimeout),
    maxDrainSize: checkInt('maxDrainSize', o.maxDrainSize ?? DEFAULTS.maxDrainSize, 0),
    allowHalfOpen: o.allowHalfOpen ?? false,
    headerEncoding,
    catchErrors,
    onError: o.onError ?? defaultOnError,
  };
  const normalized: NormalizedOptions = {
    conn,
    parallelism,
    maxConnections: o.maxConnections === undefined ? Infinity : checkInt('maxConnections', o.maxConnections, 1),
    shutdownTimeout: checkTimeout('shutdownTimeout', o.shutdownTimeout ?? DEFAULTS.shutdownTimeout),
    socketMode: checkInt('socketMode', o.socketMode ?? DEFAULTS.socketMode, 0, 0o777),
    socketGroup: o.socketGroup === undefined ? undefined : resolveGroup(o.socketGroup),
    handleSignals: o.handleSignals ?? true,
    transport: transportOption(o.transport),
    ...monitorOptions(o),
    workerTimeout: workerTimeoutOption(o.workerTimeout),
    userOnError: o.onError !== undefined,
    maxRequests: checkInt('maxRequests', o.maxRequests ?? 0, 0),
    maxRequestsJitter: checkInt('maxRequestsJitter', o.maxRequestsJitter ?? 0, 0),
    maxRss: checkInt('maxRss', o.maxRss ?? 0, 0),
  };
  if (normalized.parallelism === 1 && (normalized.maxRequests > 0 || normalized.maxRss > 0)) {
    // Replacing the process needs a primary to fork the replacement first.
    throw new ScgiError(
      'ERR_SCGI_INVALID_OPTION',
      `${normalized.maxRequests > 0 ? 'maxRequests' : 'maxRss'} needs parallelism > 1 (a primary forks the replacement before the old worker stops); ` +
        'at parallelism 1 use parallelism: 2, or let the service manager restart the process (systemd: MemoryMax= with Restart=always)',
    );
  }
  return normalized;
}

function workerTimeoutOption(value: unknown): number {
  const ms = checkTimeout('workerTimeout', value ?? DEFAULTS.workerTimeout);
  if (ms !== 0 && ms < MIN_WORKER_TIMEOUT) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `workerTimeout must be 0 (off) or from ${MIN_WORKER_TIMEOUT} to ${MAX_TIMEOUT}, got ${ms}`);
  }
  return ms;
}

/** `statusAddress`, `accessLog`, `slowRequestThreshold`, `onSlowRequest`: the monitor is made only when one needs it. */
function monitorOptions(o: ServeOptions): { monitor: MonitorOptions | null; statusAddress: string | null } {
  const statusAddress = o.statusAddress ?? null;
  if (statusAddress !== null && (typeof statusAddress !== 'string' || statusAddress.trim() === '')) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'statusAddress must be a unix socket path or host:port');
  }
  const accessLog = o.accessLog ?? false;
  if (typeof accessLog !== 'boolean' && typeof accessLog !== 'function') {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'accessLog must be a boolean or a function');
  }
  const slowRequestThreshold = checkTimeout('slowRequestThreshold', o.slowRequestThreshold ?? 0);
  const onSlowRequest = o.onSlowRequest ?? reportSlowRequest;
  if (typeof onSlowRequest !== 'function') throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'onSlowRequest must be a function');
  const needed = statusAddress !== null || accessLog !== false || slowRequestThreshold > 0;
  return { monitor: needed ? { accessLog, slowRequestThreshold, onSlowRequest } : null, statusAddress };
}

/** The `transport` option, else `SCGI_TRANSPORT` ('' or 'auto': the default). */
function transportOption(value: unknown): 'native' | 'net' | null {
  if (value !== undefined) {
    if (value !== 'native' && value !== 'net') throw new ScgiError('ERR_SCGI_INVALID_OPTION', `transport must be 'native' or 'net'`);
    return value;
  }
  const env = (process.env.SCGI_TRANSPORT ?? '').trim().toLowerCase();
  if (env === '' || env === 'auto') return null;
  if (env !== 'native' && env !== 'net') {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `SCGI_TRANSPORT must be native, net or auto, not ${JSON.stringify(env)}`);
  }
  return env;
}

function defaultOnError(err: Error, client: ScgiClient | null): void {
  const where = client ? ` in ${client.headers.get('REQUEST_METHOD') ?? '?'} ${client.headers.get('REQUEST_URI') ?? '?'}` : '';
  const code = (err as { code?: unknown }).code;
  console.error(`scgi: handler error${where}: ${err.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${err.message}`);
}
