/**
 * `serve(handler, options)`: listen once, call the handler for every request.
 */
import { EventEmitter } from 'node:events';
import cluster from 'node:cluster';
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer as netCreateServer, Server as NetServer, type AddressInfo, type ListenOptions, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { prepareUnixPath, resolveAddress, resolveGroup, defaultAddress, formatAddress, type ResolvedAddress } from './address.ts';
import { Connection, type ConnectionHost, type ConnectionOptions, type Handler, type ScgiClient, type ScgiStats } from './connection.ts';
import { ScgiError } from './errors.ts';
import type { HeaderEncoding } from './headers.ts';
import { parse as activeParse, outSize } from './parser/index.ts';

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
  /** ms that close() (and SIGTERM) waits for requests in progress. Default 30000. */
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
}

/** A listening SCGI server. */
export interface ScgiServer extends EventEmitter {
  /** Where it listens: a socket path, or `{ address, port, family }`. */
  address(): string | AddressInfo | null;
  /** Stop accepting, let requests in progress finish (up to shutdownTimeout), remove the socket file we created. */
  close(): Promise<void>;
  /** Open connections (a cluster primary: as its workers last reported). */
  getConnections(): Promise<number>;
  /** Counters (a cluster primary: its workers' summed, reported about once a second). */
  readonly stats: Readonly<ScgiStats>;
  /** The underlying `net.Server` (null in a cluster primary). */
  readonly server: NetServer | null;
  /** Cluster primary only (`parallelism` > 1): pids of the live workers. */
  readonly workers?: number[];
  /** Cluster primary only: replace the workers one by one (what SIGHUP does). */
  reload?(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** ms between a cluster worker's reports of its counters to the primary. */
export const STATS_INTERVAL = 1000;

const DEFAULTS = {
  maxHeaderSize: 64 * 1024,
  maxHeadersCount: 2000,
  headerTimeout: 10_000,
  requestTimeout: 0,
  shutdownTimeout: 30_000,
  drainTimeout: 5_000,
  maxDrainSize: 16 * 1024 * 1024,
  socketMode: 0o660,
};

function checkInt(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

const KNOWN_OPTIONS = new Set([
  'address', 'port', 'socket', 'parallelism', 'catchErrors', 'onError', 'listen', 'createServer', 'socketMode',
  'socketGroup', 'maxHeaderSize', 'maxHeadersCount', 'strict', 'maxBodySize', 'maxConnections', 'headerTimeout',
  'requestTimeout', 'shutdownTimeout', 'drainTimeout', 'maxDrainSize', 'headerEncoding', 'handleSignals', 'allowHalfOpen',
]);

/** @internal Validated options with defaults. */
export function normalizeOptions(options: ServeOptions) {
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
  const conn: ConnectionOptions = {
    maxHeaderSize: checkInt('maxHeaderSize', o.maxHeaderSize ?? DEFAULTS.maxHeaderSize, 1, 9_999_999),
    maxHeadersCount: checkInt('maxHeadersCount', o.maxHeadersCount ?? DEFAULTS.maxHeadersCount, 1, 1_000_000),
    strict: o.strict ?? false,
    maxBodySize: o.maxBodySize === undefined ? Infinity : checkInt('maxBodySize', o.maxBodySize, 0),
    headerTimeout: checkInt('headerTimeout', o.headerTimeout ?? DEFAULTS.headerTimeout, 0),
    requestTimeout: checkInt('requestTimeout', o.requestTimeout ?? DEFAULTS.requestTimeout, 0),
    drainTimeout: checkInt('drainTimeout', o.drainTimeout ?? DEFAULTS.drainTimeout, 0),
    maxDrainSize: checkInt('maxDrainSize', o.maxDrainSize ?? DEFAULTS.maxDrainSize, 0),
    allowHalfOpen: o.allowHalfOpen ?? false,
    headerEncoding,
    catchErrors,
    onError: o.onError ?? defaultOnError,
  };
  return {
    conn,
    parallelism,
    maxConnections: o.maxConnections === undefined ? Infinity : checkInt('maxConnections', o.maxConnections, 1),
    shutdownTimeout: checkInt('shutdownTimeout', o.shutdownTimeout ?? DEFAULTS.shutdownTimeout, 0),
    socketMode: checkInt('socketMode', o.socketMode ?? DEFAULTS.socketMode, 0, 0o777),
    socketGroup: o.socketGroup === undefined ? undefined : resolveGroup(o.socketGroup),
    handleSignals: o.handleSignals ?? true,
  };
}

function defaultOnError(err: Error, client: ScgiClient | null): void {
  const where = client ? ` in ${client.headers.get('REQUEST_METHOD') ?? '?'} ${client.headers.get('REQUEST_URI') ?? '?'}` : '';
  const code = (err as { code?: unknown }).code;
  console.error(`scgi: handler error${where}: ${err.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${err.message}`);
}

// ---- signals: one process-wide handler for every live server ----

const live = new Set<{ close(): Promise<void> }>();
let signalsInstalled = false;

function onTerminate(): void {
  removeSignalHandlers();
  const all = [...live];
  Promise.allSettled(all.map((s) => s.close())).then(() => process.exit(0));
}

function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  process.on('SIGTERM', onTerminate);
  process.on('SIGINT', onTerminate);
}

function removeSignalHandlers(): void {
  if (!signalsInstalled) return;
  signalsInstalled = false;
  process.off('SIGTERM', onTerminate);
  process.off('SIGINT', onTerminate);
}

/** @internal track a server for SIGTERM/SIGINT. */
export function trackForSignals(server: { close(): Promise<void> }, enabled: boolean): () => void {
  if (!enabled) return () => {};
  live.add(server);
  installSignalHandlers();
  return () => {
    live.delete(server);
    if (live.size === 0) removeSignalHandlers();
  };
}

// ---- the in-process server ----

export class InProcessServer extends EventEmitter implements ScgiServer, ConnectionHost {
  readonly handler: Handler;
  readonly options: ConnectionOptions;
  readonly parser = activeParse;
  readonly out: Uint32Array;
  readonly stats: ScgiStats = { connections: 0, requests: 0, rejected: 0, timeouts: 0, errors: 0, overloaded: 0 };
  readonly connections = new Set<Connection>();
  readonly server: NetServer;
  readonly #maxConnections: number;
  readonly #shutdownTimeout: number;
  #sweep: NodeJS.Timeout | null = null;
  #closing: Promise<void> | null = null;
  #idle: (() => void) | null = null;
  /** The unix socket file we created: removed on close if it is still ours. */
  #ownedPath: { path: string; ino: number } | null = null;
  #untrack: () => void = () => {};

  constructor(handler: Handler, opts: ReturnType<typeof normalizeOptions>, server: NetServer | null, create?: ServeOptions['createServer']) {
    super();
    this.handler = handler;
    this.options = opts.conn;
    this.out = new Uint32Array(outSize(opts.conn.maxHeadersCount));
    this.#maxConnections = opts.maxConnections;
    this.#shutdownTimeout = opts.shutdownTimeout;
    const onConnection = (socket: Socket) => this.accept(socket);
    if (server !== null) {
      server.on('connection', onConnection);
      this.server = server;
    } else if (create !== undefined) {
      this.server = create(onConnection);
    } else {
      this.server = netCreateServer({ allowHalfOpen: true, noDelay: true }, onConnection);
    }
    // Errors after listening (listen errors reject serve() instead): to
    // 'error' listeners if there are any, else one line on stderr, never a crash.
    this.server.on('error', (err) => {
      if (!this.server.listening) return;
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else console.error(`scgi: server error: ${err.message}`);
    });
  }

  /** @internal Take over an accepted socket (or any Duplex standing in for one, as inject does). */
  accept(socket: Socket): void {
    const now = Date.now();
    this.stats.connections++;
    const conn = new Connection(socket, this, now);
    this.connections.add(conn);
    if (this.connections.size > this.#maxConnections) {
      this.stats.overloaded++;
      conn.refuse(503, 'Service Unavailable\n', now);
    }
    this.#ensureSweep();
  }

  clientError(err: ScgiError, socket: Socket): void {
    if (this.listenerCount('clientError') > 0) this.emit('clientError', err, socket);
  }

  released(conn: Connection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0) {
      if (this.#sweep !== null) {
        clearInterval(this.#sweep);
        this.#sweep = null;
      }
      this.#idle?.();
    }
  }

  /** One timer for all connections' deadlines. */
  #ensureSweep(): void {
    if (this.#sweep !== null) return;
    const o = this.options;
    const shortest = Math.min(...[o.headerTimeout, o.requestTimeout, o.drainTimeout].filter((t) => t > 0), 10_000);
    const tick = Math.max(5, Math.min(1000, Math.floor(shortest / 5)));
    this.#sweep = setInterval(() => {
      const now = Date.now();
      for (const conn of this.connections) {
        if (conn.deadline !== 0 && now >= conn.deadline) conn.timeout();
      }
    }, tick);
    this.#sweep.unref();
  }

  async listenOn(resolved: ResolvedAddress, mode: number, group: number | undefined, hook: ServeOptions['listen'], isDefault: boolean): Promise<void> {
    const listen = resolved.listen;
    if (resolved.kind === 'unix') {
      await prepareUnixPath(resolved.path, isDefault);
      // Bind with a umask that gives exactly `mode`, so there is no moment
      // when the socket is wider than asked; restored right after the bind
      // (a synchronous part of listen()), so nothing else in the process
      // creates files under it.
      const old = process.umask(~mode & 0o777);
      let restored = false;
      const restore = () => {
        if (!restored) process.umask(old);
        restored = true;
      };
      try {
        await this.#listen(listen, hook, restore);
      } finally {
        restore();
      }
      chmodSync(resolved.path, mode);
      if (group !== undefined) chownSync(resolved.path, -1, group);
      this.#ownedPath = { path: resolved.path, ino: lstatSync(resolved.path).ino };
    } else {
      await this.#listen(listen, hook);
    }
  }

  /** Listen; `bound` runs as soon as the bind has happened (listen() binds synchronously), before 'listening'. */
  #listen(options: ListenOptions, hook: ServeOptions['listen'], bound: () => void = () => {}): Promise<void> {
    const server = this.server;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        if (err.code === 'EADDRINUSE') {
          reject(new ScgiError('ERR_SCGI_ADDRESS_IN_USE', `address in use: ${describe(options)}`, { cause: err }));
        } else if (err.code === 'EACCES') {
          reject(new ScgiError('ERR_SCGI_INVALID_ADDRESS', `permission denied listening on ${describe(options)}`, { cause: err }));
        } else reject(err);
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      try {
        if (hook !== undefined) {
          Promise.resolve(hook(server, options)).then(bound, onError);
        } else {
          server.listen(options);
          bound();
        }
      } catch (err) {
        bound();
        onError(err as NodeJS.ErrnoException);
      }
    });
  }

  track(handleSignals: boolean): void {
    this.#untrack = trackForSignals(this, handleSignals);
  }

  address(): string | AddressInfo | null {
    return this.server.address();
  }

  getConnections(): Promise<number> {
    return Promise.resolve(this.connections.size);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#untrack();
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    // Connections that have not started a request and are past it get closed now;
    // requests in progress get shutdownTimeout to finish.
    if (this.connections.size > 0) {
      const idle = new Promise<void>((resolve) => (this.#idle = resolve));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#shutdownTimeout);
      });
      await Promise.race([idle, timeout]);
      clearTimeout(timer);
      for (const conn of this.connections) conn.socket.destroy();
    }
    await closed;
    this.#removeSocketFile();
    this.emit('close');
  }

  #removeSocketFile(): void {
    const owned = this.#ownedPath;
    if (owned === null) return;
    this.#ownedPath = null;
    try {
      const st = lstatSync(owned.path);
      if (st.isSocket() && st.ino === owned.ino) unlinkSync(owned.path);
    } catch {
      // already gone (libuv unlinks on close)
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function describe(options: ListenOptions & { fd?: number }): string {
  if (options.path !== undefined) return options.path;
  if (options.fd !== undefined) return `fd ${options.fd}`;
  return formatAddress({ address: options.host ?? '0.0.0.0', port: options.port ?? 0 });
}

/** fd 3.. from systemd socket activation. */
function systemdFd(): number {
  const pid = Number(process.env.LISTEN_PID);
  const fds = Number(process.env.LISTEN_FDS);
  if (pid !== process.pid || !(fds >= 1)) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `socket: 'systemd' but LISTEN_PID/LISTEN_FDS do not pass a socket to this process`);
  }
  return 3;
}

/**
 * Start an SCGI server: resolves once it listens. With `parallelism` > 1,
 * the calling process becomes a cluster primary and each worker (which runs
 * the same script, so calls `serve` too) serves requests.
 */
export async function serve(handler: Handler, options: ServeOptions = {}): Promise<ScgiServer> {
  if (typeof handler !== 'function') throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'handler must be a function');
  const opts = normalizeOptions(options);
  if (opts.parallelism > 1 && cluster.isPrimary) {
    const { startCluster } = await import('./cluster.ts');
    return startCluster(options, opts);
  }
  const inWorker = cluster.isWorker && process.env.SCGI_WORKER === '1';
  const existing = options.socket instanceof NetServer ? options.socket : null;
  const server = new InProcessServer(handler, opts, existing, options.createServer);

  if (existing !== null) {
    if (!existing.listening) {
      await new Promise<void>((resolve, reject) => {
        existing.once('listening', resolve);
        existing.once('error', reject);
      });
    }
  } else if (options.socket !== undefined) {
    const fd = options.socket === 'systemd' ? systemdFd() : (options.socket as { fd: number }).fd;
    await server.listenOn({ kind: 'custom', listen: { fd } as ListenOptions }, opts.socketMode, undefined, options.listen, false);
  } else {
    const resolved = resolveAddress(options.address, options.port);
    if (inWorker && resolved.kind === 'unix') {
      // The primary prepared the path, binds it and sets its mode.
      await server.listenOn({ kind: 'custom', listen: resolved.listen }, opts.socketMode, undefined, options.listen, false);
    } else {
      const isDefault = options.address === undefined && options.port === undefined;
      await server.listenOn(resolved, opts.socketMode, opts.socketGroup, options.listen, isDefault);
    }
  }
  server.track(opts.handleSignals);
  if (inWorker) {
    // Report counters to the primary (its `stats` sums the workers'), once a
    // second while they change, and once more on the way out.
    let last = '';
    const report = (then?: () => void) => {
      const snapshot = JSON.stringify(server.stats) + server.connections.size;
      if (snapshot === last || !process.connected) return then?.();
      last = snapshot;
      process.send!({ scgi: 'stats', stats: server.stats, open: server.connections.size }, undefined, {}, () => then?.());
    };
    const timer = setInterval(() => report(), STATS_INTERVAL);
    timer.unref();
    // The primary asks only workers that listen (one still starting gets SIGTERM).
    process.on('message', (msg: unknown) => {
      if (msg === null || typeof msg !== 'object' || (msg as { scgi?: string }).scgi !== 'shutdown') return;
      server.close().then(() => {
        clearInterval(timer);
        report(() => process.exit(0));
      });
    });
  }
  return server;
}

export { defaultAddress };
