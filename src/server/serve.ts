/**
 * `serve(handler, options)`: listen once, call the handler for every
 * request. The in-process server (`InProcessServer`) accepts connections,
 * gives each a `Lifecycle` (`src/connection/lifecycle.ts`) over a `Transport`
 * (`src/transport/`), runs the one deadline sweep, counts every outcome in
 * `stats` (`record`), and closes gracefully. With `parallelism` > 1 the
 * calling process becomes a cluster primary instead (`src/server/cluster.ts`).
 */
import { EventEmitter } from 'node:events';
import cluster from 'node:cluster';
import { lookup } from 'node:dns/promises';
import { closeSync } from 'node:fs';
import { createServer as netCreateServer, isIP, Server as NetServer, type AddressInfo, type ListenOptions, type Socket } from 'node:net';
import { backlogOf, resolveAddress, defaultAddress, formatAddress, systemdFd, type ResolvedAddress } from '../address.ts';
import { isClusterWorker, listenOutsideCluster, reportFailedStart, runWorker, startCluster, takeInheritedListen } from './cluster.ts';
import { listenError, ScgiError } from '../errors.ts';
import type { HeaderParse } from '../protocol/header-reader.ts';
import { FD_RESERVE, openFileLimit, socketFd } from './fd-limit.ts';
import { Lifecycle, Phase, type LifecycleHost } from '../connection/lifecycle.ts';
import { normalizeOptions, sweepTick, type LifecycleOptions, type NormalizedOptions, type ServeOptions } from '../options.ts';
import { parse as activeParse, parserInfo, FLAG_STRICT, outSize } from '../parser/index.ts';
import type { Handler } from '../connection/scgi-client.ts';
import { trackForSignals } from './signals.ts';
import { Monitor } from '../status/monitor.ts';
import { startStatusServer } from '../status/server.ts';
import { armSelfWatchdog } from '../supervision/watchdog.ts';
import { NetTransport } from '../transport/net.ts';
import { listenerPending } from '../transport/native-engine.ts';
import { NativeConnections, nativeUnavailableReason } from '../transport/native.ts';
import { rethrowLater } from '../transport/native-engine.ts';
import type { Transport, TransportSocket } from '../transport/types.ts';
import { zeroStats, type ScgiServer, type ScgiStats } from '../types.ts';
import { UnixSocketFile } from './unix-socket.ts';

export type { ServeOptions } from '../options.ts';
export type { ScgiServer } from '../types.ts';

function onNetConnection(this: InProcessServer, socket: Socket): void {
  const transport = new NetTransport(socket);
  if (socketFd(socket) >= this.fdCeiling) this.acceptNearFdLimit(transport);
  else this.accept(transport);
}

/** At most one fd-limit report per this many ms (with the count since the last). */
const FD_REPORT_INTERVAL = 10_000;

export class InProcessServer extends EventEmitter implements ScgiServer, LifecycleHost {
  readonly handler: Handler;
  readonly options: LifecycleOptions;
  readonly headerParse: HeaderParse;
  readonly stats: ScgiStats = zeroStats();
  readonly connections = new Set<Lifecycle>();
  /** The `net.Server` (null when the native transport owns the listening socket). */
  readonly server: NetServer | null;
  /** Which transport carries the connections. */
  readonly transport: 'native' | 'net';
  /** The native transport's engine and connections (null on net). */
  readonly native: NativeConnections | null = null;
  /** Where the native transport listens, or a net unix socket bound aside (what `address()` says). */
  #nativeAddress: string | AddressInfo | null = null;
  readonly #maxConnections: number;
  readonly #shutdownTimeout: number;
  #sweep: NodeJS.Timeout | null = null;
  #closing: Promise<void> | null = null;
  /** The net listener's close (after its backlog is accepted), once started; the net.Server's close. */
  #netStopped: Promise<void> | null = null;
  #netClosed: Promise<void> = Promise.resolve();
  #idle: (() => void) | null = null;
  /** The unix socket file we created: removed on close if it is still ours. */
  #socketFile: UnixSocketFile | null = null;
  #untrack: () => void = () => {};
  #disarm: () => void = () => {};
  /** A cluster worker: ask the primary for this worker's replacement (set by runWorker), else null. */
  #recycle: (() => void) | null = null;
  /** The request count at which a cluster worker asks for its replacement (maxRequests + jitter), else Infinity. */
  recycleAfter = Infinity;
  /** The soft `ulimit -n` (null: unknown) and the descriptor number from which connections are refused. */
  readonly #fdLimit: number | null;
  readonly fdCeiling: number;
  /** Connections refused near the fd limit since the last report, and when that was. */
  #fdPending = 0;
  #fdReportedAt = -Infinity;
  /** When the sweep last ran (for the body watch's clock). */
  #lastSweep = 0;
  /** The request monitor (src/status/monitor.ts), null unless statusAddress, accessLog or slowRequestThreshold asks for it (or registerMetrics). */
  monitor: Monitor | null;

  constructor(handler: Handler, opts: NormalizedOptions, server: NetServer | null, create?: ServeOptions['createServer'], transport: 'native' | 'net' = 'net') {
    super();
    this.handler = handler;
    const o = opts.conn;
    this.options = o;
    this.headerParse = {
      parse: activeParse,
      out: new Uint32Array(outSize(o.maxHeadersCount)),
      maxHeaderSize: o.maxHeaderSize,
      maxHeadersCount: o.maxHeadersCount,
      flags: o.strict ? FLAG_STRICT : 0,
    };
    this.#maxConnections = opts.maxConnections;
    this.#shutdownTimeout = opts.shutdownTimeout;
    this.#fdLimit = openFileLimit();
    this.fdCeiling = this.#fdLimit === null ? Infinity : Math.max(this.#fdLimit - FD_RESERVE, 3);
    this.transport = transport;
    this.monitor = opts.monitor === null ? null : new Monitor(opts.monitor, this);
    if (transport === 'native') {
      this.server = null;
      this.native = new NativeConnections(this, opts.maxConnections);
      return;
    }
    const onConnection = onNetConnection.bind(this);
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
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.server!.listening) return;
      if (err.code === 'EMFILE' || err.code === 'ENFILE') {
        // libuv could not even accept-and-close (its reserve descriptor was gone)
        this.record('fdExhausted');
        this.#reportFdLimit();
        return;
      }
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else console.error(`scgi: server error: ${err.message}`);
    });
  }

  /** Take over an accepted connection (a `NetTransport`, inject's in-memory one, or another transport). */
  accept(transport: Transport): Lifecycle {
    const now = Date.now();
    this.record('connections');
    const conn = new Lifecycle(transport, this, now);
    this.connections.add(conn);
    if (this.connections.size > this.#maxConnections) {
      this.record('overloaded');
      conn.refuse(503, now);
    }
    this.#ensureSweep();
    return conn;
  }

  /** A connection whose descriptor is within FD_RESERVE of `ulimit -n`: answered 503 while we still can (`src/server/fd-limit.ts`). */
  acceptNearFdLimit(transport: Transport): void {
    const now = Date.now();
    this.record('connections');
    const conn = new Lifecycle(transport, this, now);
    this.connections.add(conn);
    this.record('fdExhausted');
    conn.refuse(503, now);
    this.#ensureSweep();
    this.#reportFdLimit();
  }

  /**
   * The native transport answered `n` connections 503 for the fd limit
   * (counted, once each); `stalled`: accept() also failed for lack of
   * descriptors, which refuses nobody (the engine retries later) and is
   * reported, not counted.
   */
  fdLimitRefused(n: number, stalled: boolean): void {
    for (let i = 0; i < n; i++) this.record('fdExhausted');
    if (n > 0 || stalled) this.#reportFdLimit(n);
  }

  /** One line (or one 'error' event, ERR_SCGI_FD_LIMIT) at most every FD_REPORT_INTERVAL ms, for `n` more connections answered 503. */
  #reportFdLimit(n = 1): void {
    this.#fdPending += n;
    const now = Date.now();
    if (now - this.#fdReportedAt < FD_REPORT_INTERVAL) return;
    this.#fdReportedAt = now;
    const refused = this.#fdPending;
    this.#fdPending = 0;
    const limit = this.#fdLimit === null ? '' : ` ${this.#fdLimit}`;
    const what = refused > 0 ? `${refused} connection${refused === 1 ? '' : 's'} refused with 503` : 'accepting paused';
    const err = new ScgiError(
      'ERR_SCGI_FD_LIMIT',
      `${what}: the process is at its file descriptor limit (ulimit -n${limit}); ` +
        'raise it (systemd: LimitNOFILE=) or set maxConnections below it (docs/security.md)',
    );
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else console.error(`scgi: ${err.message}`);
  }

  /**
   * Take over a connection the native transport already counted and admitted
   * (it answers 503 over maxConnections itself): only its lifecycle is made here.
   */
  adoptAdmitted(transport: Transport): Lifecycle {
    const conn = new Lifecycle(transport, this, Date.now());
    this.connections.add(conn);
    this.#ensureSweep();
    return conn;
  }

  record(kind: keyof ScgiStats, err?: ScgiError, socket?: TransportSocket): void {
    // A cluster worker with maxRequests asks for its replacement at its `recycleAfter`-th request (src/server/cluster.ts runWorker).
    if (++this.stats[kind] === this.recycleAfter && kind === 'requests') this.#recycle?.();
    if (err !== undefined && this.listenerCount('clientError') > 0) {
      try {
        this.emit('clientError', err, socket);
      } catch (thrown) {
        // A listener's bug is the process's (uncaughtException), not this
        // connection's or the others' handled in the same call: the caller
        // goes on (closes the connection, delivers the rest of its batch).
        rethrowLater(thrown);
      }
    }
  }

  released(conn: Lifecycle): void {
    this.connections.delete(conn);
    if (this.monitor !== null) this.monitor.released(conn);
    // The sweep stops itself at its next tick without connections: under
    // load, connections come and go between ticks, and a timer made and
    // cleared each time would cost more than the sweep (it is unref'd).
    if (this.connections.size === 0) this.#idle?.();
  }

  /** Open connections now. */
  get openConnections(): number {
    // Native: every connection the engine holds, including those still
    // sending their header (which have no lifecycle yet).
    return this.native !== null ? this.native.engine.openConnections : this.connections.size;
  }

  /**
   * Connections accepted whose request has not started: on net those in
   * `HEADER`; native, the engine's that it has not handed over (header still
   * coming, or refused and draining).
   */
  get awaitingHeader(): number {
    if (this.native !== null) return Math.max(0, this.native.engine.openConnections - this.native.live);
    let n = 0;
    for (const conn of this.connections) if (conn.phase === Phase.HEADER) n++;
    return n;
  }

  /**
   * Stop accepting (what waits in the backlog is accepted first; resolves
   * when the listener is closed); connections stay. `close()` still closes
   * (a cluster worker being retired does this first, src/server/cluster.ts).
   */
  stopAccepting(): Promise<void> {
    if (this.native === null) return this.#closeNetListener();
    this.native.engine.closeListener();
    return Promise.resolve();
  }

  /**
   * Close the net.Server's listener, but first accept what waits in its
   * backlog, as the native engine's closeListener does: closing a listening
   * socket resets every connection still queued there, which reached the
   * socket before the stop. libuv accepts until EAGAIN at each poll phase,
   * so this waits loop turns while the socket is readable (asked of the
   * addon: one poll(2)) and then closes in the same synchronous step as the
   * last check: at once when nothing waits, so a connection made after
   * `close()` is refused. Without the addon (or with SCGI_PARSER=js) it
   * closes at once. Resolves once the listener is
   * closed; `#netClosed` when the server is (its last connection gone).
   */
  #closeNetListener(): Promise<void> {
    const server = this.server;
    if (server === null || !server.listening) return Promise.resolve();
    this.#netStopped ??= (async () => {
      const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
      // SCGI_PARSER=js promises not to touch the addon; without it nothing
      // can tell, and the listener closes at once.
      const pending = () => (parserInfo.forced === 'js' || typeof fd !== 'number' || fd < 0 ? false : listenerPending(fd) === true);
      // Bounded: each turn accepts everything queued; a flood is cut where it is.
      for (let i = 0; i < 100 && server.listening && pending(); i++) await new Promise<void>((resolve) => setImmediate(resolve));
      this.#netClosed = new Promise<void>((resolve) => {
        if (!server.listening) resolve();
        else server.close(() => resolve());
      });
    })();
    return this.#netStopped;
  }

  /** One timer for all connections' deadlines. */
  #ensureSweep(): void {
    if (this.#sweep !== null) return;
    const o = this.options;
    const tick = sweepTick([o.headerTimeout, o.requestTimeout, o.drainTimeout, o.bodyTimeout]);
    this.#lastSweep = Date.now();
    this.#sweep = setInterval(() => {
      if (this.connections.size === 0) {
        clearInterval(this.#sweep!);
        this.#sweep = null;
        return;
      }
      const now = Date.now();
      const elapsed = now - this.#lastSweep;
      this.#lastSweep = now;
      for (const conn of this.connections) {
        if (conn.deadline !== 0 && now >= conn.deadline) conn.onDeadline();
        else if (conn.bodyWatch) conn.onBodyTick(elapsed);
      }
    }, tick);
    this.#sweep.unref();
  }

  /** Listen on `resolved`; a unix socket path is prepared, bound under the umask, and owned (`UnixSocketFile`). */
  async listenOn(resolved: ResolvedAddress, mode: number, group: number | undefined, hook: ServeOptions['listen'], isDefault: boolean): Promise<void> {
    if (this.native !== null) {
      await this.#listenNative(resolved, mode, group, isDefault);
      return;
    }
    if (resolved.kind !== 'unix') {
      await this.#listen(resolved.listen, hook);
      return;
    }
    const file = new UnixSocketFile(resolved.path, mode, group);
    await file.prepare(isDefault);
    // A worker thread binds at a private path, then links it into place (address() is the real path).
    const aside = UnixSocketFile.bindsAside;
    await file
      .bindListening((path, bound) => this.#listen(aside ? { ...resolved.listen, path } : resolved.listen, hook, bound))
      .catch((err) => {
        if (aside) this.server!.close();
        throw err;
      });
    if (aside) this.#nativeAddress = resolved.path;
    this.#socketFile = file;
  }

  /** The native transport binds (or adopts) the listening socket itself, synchronously. */
  async #listenNative(resolved: ResolvedAddress, mode: number, group: number | undefined, isDefault: boolean): Promise<void> {
    const engine = this.native!.engine;
    if (resolved.kind === 'unix') {
      const file = new UnixSocketFile(resolved.path, mode, group);
      await file.prepare(isDefault);
      await file.bindListening((path) => engine.listenUnix(path, backlogOf(resolved)));
      this.#socketFile = file;
      this.#nativeAddress = resolved.path;
      return;
    }
    if (resolved.kind === 'tcp') {
      let ip = resolved.host;
      if (isIP(ip) === 0) ip = (await lookup(ip, { family: resolved.family })).address;
      let port: number;
      try {
        port = engine.listenTcp(ip, resolved.port, backlogOf(resolved));
      } catch (err) {
        throw listenError(err as NodeJS.ErrnoException, formatAddress({ address: ip, port: resolved.port }));
      }
      const v6 = isIP(ip) === 6;
      this.#nativeAddress = { address: ip, family: v6 ? 'IPv6' : 'IPv4', port };
      return;
    }
    const fd = (resolved.listen as { fd?: number }).fd;
    if (fd === undefined) throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'the native transport listens on a path, a host and port, or an fd');
    let port: number;
    try {
      port = engine.adopt(fd);
    } catch (err) {
      throw listenError(err as NodeJS.ErrnoException, `fd ${fd}`);
    }
    // An inherited unix socket: null, as net.Server says for one (the CLI finds its path from the fd).
    this.#nativeAddress = port === 0 ? null : { address: '0.0.0.0', family: 'IPv4', port };
  }

  /** Listen; `bound` runs as soon as the bind has happened (listen() binds synchronously), before 'listening'. */
  #listen(options: ListenOptions, hook: ServeOptions['listen'], bound: () => void = () => {}): Promise<void> {
    const server = this.server!;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        reject(err instanceof ScgiError ? err : listenError(err, describe(options)));
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

  /** `serve()` failed before this server listened: release what the constructor made (the native engine). */
  abandon(): void {
    this.native?.engine.close();
  }

  track(handleSignals: boolean): void {
    this.#untrack = trackForSignals(this, handleSignals);
  }

  /** SIGHUP (src/server/signals.ts): unset, a warning that it keeps serving; a cluster worker ignores it (runWorker). */
  onHangup?: () => void;

  /** The second SIGINT (src/server/signals.ts): the process exits now; remove the socket file we created. */
  abort(): void {
    this.#socketFile?.release();
    this.#socketFile = null;
  }

  /** In a cluster worker: how it asks for its replacement (src/server/cluster.ts runWorker). */
  supervise(recycle: () => void, recycleAfter: number): void {
    this.#recycle = recycle;
    this.recycleAfter = recycleAfter;
  }

  /**
   * In a cluster worker: ask the primary to replace this worker, as a SIGHUP
   * reload step does (the replacement listens first, then this one finishes
   * its requests and exits). Without a primary: `ERR_SCGI_NOT_SUPERVISED`.
   */
  recycle(): void {
    if (this.#recycle === null) {
      throw new ScgiError(
        'ERR_SCGI_NOT_SUPERVISED',
        'recycle() replaces a cluster worker: it needs parallelism > 1 (at parallelism 1, exit and let the service manager restart the process)',
      );
    }
    this.#recycle();
  }

  /** Parallelism 1 without a primary: the in-process workerTimeout (src/supervision/watchdog.ts), until close. */
  async armWatchdog(workerTimeout: number): Promise<void> {
    this.#disarm = await armSelfWatchdog(this, workerTimeout);
  }

  address(): string | AddressInfo | null {
    // Native, or a unix socket a worker thread bound aside (net.Server names the private path).
    if (this.server === null || this.#nativeAddress !== null) return this.#nativeAddress;
    return this.server.address();
  }

  getConnections(): Promise<number> {
    return Promise.resolve(this.openConnections);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#untrack();
    this.#disarm();
    const native = this.native;
    // What waits in the backlog is accepted first (then the two turns below
    // apply to those connections too), and the listener closes: at once when
    // nothing waits (native: always, the engine accepts synchronously), so a
    // connection made after close() is refused.
    if (native !== null) native.engine.closeListener();
    else await this.#closeNetListener();
    // Connections with no request in progress (nothing sent yet, or part of a
    // header) are closed at once, as Node's http does on close
    // (closeIdleConnections); after one more poll of the event loop, so a
    // request whose bytes have already arrived is read and served. Requests in
    // progress get shutdownTimeout to finish; a response being drained
    // finishes by itself (drainTimeout).
    if (native !== null) {
      // The engine's connections that have sent nothing have no lifecycle
      // yet: the same two turns, then closeIdle. At once would lose requests
      // in a cluster reload: a retiring worker may have just accepted a
      // connection whose request was on its way (test/process.test.ts,
      // "SIGHUP under load").
      await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
      native.engine.closeIdle();
    }
    if (this.connections.size > 0) {
      setImmediate(() =>
        setImmediate(() => {
          for (const conn of this.connections) if (conn.phase === Phase.HEADER) conn.destroy();
        }),
      );
      const idle = new Promise<void>((resolve) => (this.#idle = resolve));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#shutdownTimeout);
      });
      await Promise.race([idle, timeout]);
      clearTimeout(timer);
      for (const conn of this.connections) conn.destroy();
    }
    await this.#netClosed;
    // Connections without a request yet (a partial header) and draining ones go now.
    native?.engine.close();
    this.#socketFile?.release();
    this.#socketFile = null;
    this.emit('close');
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

/**
 * The transport for this `serve()`. Net where sockets are handed to us.
 * Unset: native where the addon has it, except with SCGI_PARSER=js (which
 * promises not to touch the addon). Asked for and unavailable: an error.
 * A cluster primary chooses for its workers (`startCluster`); a worker does
 * what its primary chose (`inherited`: the primary bound the socket for the
 * native transport and passed it down; else node:cluster shares a net one).
 * In a worker of the app's own node:cluster (or PM2's cluster mode), the
 * default is net: node:cluster shares a net.Server's handle between its
 * workers, where each native engine would bind for itself and all but the
 * first would fail with ERR_SCGI_ADDRESS_IN_USE. `'native'` asked for is kept.
 */
function chooseTransport(want: 'native' | 'net' | null, handedSockets: boolean, worker: 'native' | 'net' | null): 'native' | 'net' {
  if (worker === 'native') want = 'native';
  else if (worker === 'net' || want === 'net' || handedSockets) return 'net';
  if (want === null) {
    if (parserInfo.forced === 'js' || cluster.isWorker) return 'net';
    return nativeUnavailableReason() === null ? 'native' : 'net';
  }
  const reason = nativeUnavailableReason();
  if (reason !== null) {
    throw new ScgiError('ERR_SCGI_NATIVE_UNAVAILABLE', `transport 'native' asked for, but: ${reason}`);
  }
  return 'native';
}

/**
 * Start an SCGI server: resolves once it listens. With `parallelism` > 1,
 * the calling process becomes a cluster primary and each worker (which runs
 * the same script, so calls `serve` too) serves requests.
 */
export async function serve(handler: Handler, options: ServeOptions = {}): Promise<ScgiServer> {
  if (typeof handler !== 'function') throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'handler must be a function');
  const opts = normalizeOptions(options);
  if (opts.parallelism > 1 && cluster.isPrimary) return startCluster(options, opts, () => chooseTransport(opts.transport, false, null));
  const inWorker = isClusterWorker();
  // A worker of a primary that holds the listening socket (it bound it for native workers, or it was passed to it).
  const handedDown = takeInheritedListen();
  const inherited = handedDown?.fd ?? null;
  const existing = options.socket instanceof NetServer ? options.socket : null;
  const handed = existing !== null || options.listen !== undefined || options.createServer !== undefined;
  const workerTransport = !inWorker ? null : (handedDown?.transport ?? 'net');
  let server: InProcessServer;
  try {
    server = new InProcessServer(handler, opts, existing, options.createServer, chooseTransport(opts.transport, handed, workerTransport));
  } catch (err) {
    if (inherited !== null) closeSync(inherited);
    throw err;
  }

  try {
    await listenFor(server, options, opts, inherited, existing, inWorker);
  } catch (err) {
    // Nothing of a serve() that rejects stays: the native engine (its epoll
    // set, timerfd, eventfd and ref'd poll handle, made before listening)
    // would hold descriptors and keep the process alive.
    server.abandon();
    if (inWorker) reportFailedStart(err);
    throw err;
  }
  server.track(opts.handleSignals);
  if (opts.statusAddress !== null && !inWorker) await startStatusServer(server, opts);
  if (inWorker) runWorker(server, opts);
  else await server.armWatchdog(opts.workerTimeout);
  return server;
}

/** Listen as `options` say (inherited socket, given server, fd, or address). */
async function listenFor(
  server: InProcessServer,
  options: ServeOptions,
  opts: NormalizedOptions,
  inherited: number | null,
  existing: NetServer | null,
  inWorker: boolean,
): Promise<void> {
  if (inherited !== null && server.native === null) {
    // A net worker of a primary that holds the socket: listen on the
    // inherited descriptor itself, not through node:cluster (src/server/cluster.ts).
    await server.listenOn({ kind: 'custom', listen: { fd: inherited } as ListenOptions }, opts.socketMode, undefined, listenOutsideCluster, false);
  } else if (inherited !== null) {
    // A native worker: adopt the socket its primary holds (a duplicate) and
    // close the inherited copy, so the engine's is the worker's only one.
    try {
      await server.listenOn({ kind: 'custom', listen: { fd: inherited } as ListenOptions }, opts.socketMode, undefined, undefined, false);
    } finally {
      closeSync(inherited);
    }
  } else if (existing !== null) {
    if (!existing.listening) {
      await new Promise<void>((resolve, reject) => {
        existing.once('listening', resolve);
        existing.once('error', (err) => reject(new ScgiError('ERR_SCGI_LISTEN_FAILED', `the given server failed to listen: ${err.message}`, { cause: err })));
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
}

export { defaultAddress };
