/**
 * `parallelism` > 1: both halves of the cluster, and the messages between
 * them (`ClusterMessage`).
 *
 * The primary (`startCluster`) forks workers running the same script.
 * Workers accept on the shared listening socket directly (SCHED_NONE):
 * Node's default round-robin passes every connection through the primary,
 * which triples the CPU per SCGI request. On the native transport the
 * primary binds the socket itself through the addon (no engine watches it
 * there: the primary never accepts) and every worker inherits it as an extra
 * stdio descriptor named by `SCGI_LISTEN_FD`, adopts it into its own engine
 * (which watches it with `EPOLLEXCLUSIVE`, so one worker wakes per
 * connection) and closes the inherited copy. On net the shared socket is
 * node:cluster's (the workers' `net.Server#listen` asks the primary for the
 * handle). An inherited socket (`socket: 'systemd' | { fd }`) is held by the
 * primary and handed to every worker the same way on both transports (a net
 * worker listens on its copy itself: `listenOutsideCluster`). Either way the
 * socket stays open in the primary until it closes,
 * so connections wait in its backlog while workers are replaced. The
 * primary owns the unix socket
 * file (`UnixSocketFile`: stale socket removed, a live one or a non-socket
 * refused, bound under a umask that gives exactly `socketMode`), restarts
 * crashed workers with backoff for as long as it runs (even when every
 * worker died at once: the pending restart keeps the process alive), replaces
 * workers one by one on SIGHUP, and on
 * SIGTERM/SIGINT lets every worker finish its requests, removes the socket
 * file and exits 0. If a worker fails before it listens while `serve()` is
 * starting, `serve()` rejects and nothing of the cluster keeps running: the
 * other workers are stopped and no replacement is forked.
 *
 * A worker (`isClusterWorker()`; `serve` in a forked worker) serves in
 * process and runs `runWorker`: it sends the primary a heartbeat every second
 * (src/supervision/heartbeat.ts: counters, requests in progress, memory,
 * event-loop utilisation) and closes gracefully when asked. The primary keeps
 * one record per worker (`workerRecords()`).
 */
import cluster, { type Worker } from 'node:cluster';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { closeSync } from 'node:fs';
import { isIP, Server as NetServer, type AddressInfo, type ListenOptions, type Socket } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { backlogOf, formatAddress, resolveAddress, systemdFd, type ResolvedAddress } from '../address.ts';
import { listenError, ScgiError, type ScgiErrorCode } from '../errors.ts';
import { MAX_TIMEOUT, type NormalizedOptions, type ServeOptions } from '../options.ts';
import { trackForSignals } from './signals.ts';
import {
  HEARTBEAT_INTERVAL,
  HeartbeatMaker,
  isHeartbeat,
  WorkerRecords,
  type ExitReason,
  type Heartbeat,
  type HeartbeatSource,
  type WorkerRecord,
} from '../supervision/heartbeat.ts';
import { startPrimaryStatus } from '../status/primary.ts';
import { debugging, describeLoop, type LoopReport, reportRequestsOf, STACK_TIMEOUT, startPipeWatchdog, WATCHDOG_FD_ENV } from '../supervision/watchdog.ts';
import { listenSocket } from '../transport/native-engine.ts';
import { zeroStats, type ScgiServer, type ScgiStats } from '../types.ts';
import { UnixSocketFile } from './unix-socket.ts';

/** The IPC messages between the primary and a worker. */
export type ClusterMessage =
  /** worker → primary: its counters, requests in progress, memory (every HEARTBEAT_INTERVAL ms, and on exit). */
  | Heartbeat
  /** worker → primary: its server listens (at `address`) and it takes `shutdown` (what the primary waits for when it holds the socket). */
  | { scgi: 'listening'; address?: string | AddressInfo | null }
  /** worker → primary: replace me (maxRequests reached, or `server.recycle()`), as a reload step does. */
  | { scgi: 'recycle' }
  /** worker → primary: its serve() rejected before listening (a net worker's bind is the first to see EADDRINUSE), with this ScgiError. */
  | { scgi: 'failed'; code: string; message: string }
  /** primary → worker: finish the requests in progress, then exit 0. */
  | { scgi: 'shutdown' };

/** The environment variable that marks a process forked by the primary. */
const WORKER_ENV = 'SCGI_WORKER';
/** The environment variable naming the descriptor of the listening socket a worker inherits from its primary. */
const LISTEN_FD_ENV = 'SCGI_LISTEN_FD';
/** The transport a worker that inherits the socket uses ('native' or 'net'). */
const TRANSPORT_ENV = 'SCGI_WORKER_TRANSPORT';

/** ms between two checks of the workers' heartbeats (workerTimeout on). */
const SUPERVISION_TICK = 250;

const MAX_BACKOFF = 10_000;
/**
 * The least time a worker is given to listen, whatever workerTimeout says:
 * a small workerTimeout is for catching a blocked loop fast, not for
 * failing an app that takes a few seconds to load.
 */
export const MIN_START_TIMEOUT = 10_000;
const STABLE_AFTER = 10_000;

function isMessage(msg: unknown): msg is ClusterMessage {
  return msg !== null && typeof msg === 'object' && typeof (msg as { scgi?: unknown }).scgi === 'string';
}

/** Is this process a worker forked by `startCluster`? */
export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
}

// ---- the worker side ----

/**
 * In a worker whose serve() rejects before it listens: tell the primary why,
 * so that its serve() rejects with the same error as in process (node:cluster
 * binds a net worker's socket only when the worker asks, so an address in
 * use is seen here first), not only "exited before listening".
 */
export function reportFailedStart(err: unknown): void {
  if (!process.connected || !(err instanceof ScgiError)) return;
  const msg: ClusterMessage = { scgi: 'failed', code: err.code, message: err.message };
  process.send!(msg);
}

/**
 * In a worker of a primary that holds the listening socket (it bound one for
 * native workers, or it was given one: `socket: 'systemd' | { fd }`): the
 * descriptor the worker inherited and the transport to serve it with; else
 * null (net workers of a socket the primary did not get: node:cluster shares
 * it). Taken once: the variables are removed, so a later `serve()` never
 * mistakes another descriptor that got the number for the socket.
 */
export function takeInheritedListen(): { fd: number; transport: 'native' | 'net' } | null {
  if (!isClusterWorker()) return null;
  const value = process.env[LISTEN_FD_ENV];
  const transport = process.env[TRANSPORT_ENV] === 'net' ? 'net' : 'native';
  delete process.env[LISTEN_FD_ENV];
  delete process.env[TRANSPORT_ENV];
  const fd = Number(value);
  return value !== undefined && value !== '' && Number.isInteger(fd) && fd >= 0 ? { fd, transport } : null;
}

/**
 * A net worker of a primary that holds the socket: `server.listen({ fd })`
 * in this process itself. In a node:cluster worker, net sends every
 * `listen({ fd })` to the primary, whose shared handle owns the descriptor
 * and closes it with the last worker (after which no replacement could
 * listen); `exclusive` is not read for an fd. net asks `cluster.isPrimary`
 * at the call, and the call binds synchronously, so it is answered true for
 * that call only. (test/supervision.test.ts, "an inherited socket".)
 */
export function listenOutsideCluster(server: NetServer, options: ListenOptions): void {
  const c = cluster as { isPrimary: boolean };
  const was = c.isPrimary;
  c.isPrimary = true;
  try {
    server.listen(options);
  } finally {
    c.isPrimary = was;
  }
}

/** What a worker's in-process server offers `runWorker`. */
export interface WorkerServer extends HeartbeatSource {
  /** Connections accepted whose request has not started yet. */
  readonly awaitingHeader: number;
  /** Resolves once the listener is closed (after accepting what waited in its backlog). */
  stopAccepting(): Promise<void>;
  close(): Promise<void>;
  address(): string | AddressInfo | null;
  /** How it asks for its replacement: `recycle` once at its `recycleAfter`-th request, and from `server.recycle()`. */
  supervise(recycle: () => void, recycleAfter: number): void;
  onHangup?: () => void;
}

/** At most this long (ms) a retiring worker waits for the requests of connections it accepted to arrive. */
export const HANDOVER_GRACE = 1000;

/**
 * A retiring worker: stop accepting (the socket stays open in the primary
 * and the other workers take new connections), then wait until every
 * connection accepted has sent its request, at most HANDOVER_GRACE ms,
 * before `close()` closes those that have sent nothing. A front connects and
 * writes at once, but under load its request can arrive after a worker
 * accepted it and was told to go: closing it then (as `close()` does after
 * two loop turns) lost the request in a reload (test/process.test.ts,
 * "SIGHUP under load"). A connection that really is idle costs the grace.
 */
async function handOver(server: WorkerServer): Promise<void> {
  // The connections accepted from the backlog count too (net accepts them over loop turns).
  await server.stopAccepting();
  const until = Date.now() + HANDOVER_GRACE;
  while (server.awaitingHeader > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  await server.close();
}

/**
 * In a worker, once its server listens: a heartbeat to the primary (whose
 * `stats` sums the workers' and whose records say how each is doing) every
 * HEARTBEAT_INTERVAL ms, from one unref'd timer, and once more on the way
 * out; close gracefully and exit 0 on `shutdown`.
 */
export function runWorker(server: WorkerServer, opts: Pick<NormalizedOptions, 'maxRequests' | 'maxRequestsJitter'>): void {
  // Forked with a watchdog pipe (workerTimeout on): the thread that gives the primary this loop's stack when it blocks.
  if (startPipeWatchdog()) reportRequestsOf(server);
  // SIGHUP (a terminal hangup or a kill of the process group): the primary reloads, this worker serves on.
  server.onHangup = () => {};
  const heartbeats = new HeartbeatMaker(server);
  const report = (then?: () => void) => {
    if (!process.connected) return then?.();
    const msg: ClusterMessage = heartbeats.make();
    process.send!(msg, undefined, {}, () => then?.());
  };
  const timer = setInterval(() => report(), HEARTBEAT_INTERVAL);
  timer.unref();
  let asked = false;
  const recycle = () => {
    if (asked || !process.connected) return;
    asked = true;
    const msg: ClusterMessage = { scgi: 'recycle' };
    process.send!(msg);
  };
  const after = opts.maxRequests > 0 ? opts.maxRequests + Math.floor(Math.random() * (opts.maxRequestsJitter + 1)) : Infinity;
  server.supervise(recycle, after);
  let leaving = false;
  const leave = () => {
    if (leaving) return;
    leaving = true;
    handOver(server).then(() => {
      clearInterval(timer);
      report(() => process.exit(0));
    });
  };
  // The primary asks only workers that listen (one still starting gets SIGTERM).
  process.on('message', (msg: unknown) => {
    if (isMessage(msg) && msg.scgi === 'shutdown') leave();
  });
  // The primary gone (killed, crashed: its end closes the channel; it never
  // closes it itself). node:cluster's worker would exit at once, cutting the
  // requests in progress, unless exitedAfterDisconnect is set; this one stops
  // accepting and finishes them within shutdownTimeout, then exits, as
  // gunicorn's workers do when their parent goes.
  if (cluster.worker !== undefined) cluster.worker.exitedAfterDisconnect = true;
  process.once('disconnect', leave);
  if (process.connected) {
    const msg: ClusterMessage = { scgi: 'listening', address: server.address() };
    process.send!(msg);
    // The first heartbeat at once: the primary's record has the worker's memory and counters from the start.
    report();
  }
}

// ---- the primary side ----

/** A fork that replaces a worker: the replaced worker's counts and why it is replaced. */
type Replacing = { replacements: Readonly<Record<ExitReason, number>>; reason: ExitReason };

class ClusterPrimary extends EventEmitter implements ScgiServer {
  readonly server = null;
  /** The workers' transport, chosen here as in process (`chooseTransport`, src/server/serve.ts) and followed by every worker. */
  transport: 'native' | 'net' = 'net';
  /** The listening socket the primary holds (bound for native workers, or inherited), open until it closes (each worker gets a copy). */
  #listenFd: number | null = null;
  /** `#listenFd` was given (systemd, `{ fd }`): its address is what the first worker says. */
  #inheritedSocket = false;
  /** One record per live worker (its last heartbeat has its counters), and the sums of the workers that are gone. */
  readonly #records = new WorkerRecords<Worker>();
  /** Net: node:cluster's listening handles sent to the workers (`#keepSharedHandle`). */
  readonly #sharedHandles = new Set<{ close(): void }>();
  readonly #gone: ScgiStats = zeroStats();
  readonly #size: number;
  readonly #shutdownTimeout: number;
  readonly #workers = new Set<Worker>();
  readonly #retiring = new Set<Worker>();
  readonly #listening = new Set<Worker>();
  #address: string | AddressInfo | null = null;
  #socketFile: UnixSocketFile | null = null;
  #closing: Promise<void> | null = null;
  #crashes = 0;
  #untrack: () => void = () => {};
  #reloading = false;
  /** Restarts waiting out their backoff (ref'd: they keep the primary alive while no worker runs). */
  readonly #restarts = new Set<NodeJS.Timeout>();
  /** Why a worker is going, once the primary decided it (retired or killed); an exit without one is a crash. */
  readonly #planned = new Map<Worker, ExitReason>();
  /** The primary's end of each worker's watchdog pipe (workerTimeout on). */
  readonly #watchdogs = new Map<Worker, Socket>();
  readonly #workerTimeout: number;
  /** workerTimeout, or 0 while the process is being debugged (a worker paused at a breakpoint is not stuck): the heartbeat check. */
  #supervising = 0;
  /** How long a worker may take to listen after its fork: workerTimeout, at least MIN_START_TIMEOUT (0 when #supervising is). */
  #startTimeout = 0;
  readonly #maxRss: number;
  /** Recycles, one after another (each a reload step), and the workers waiting for theirs. */
  #recycling: Promise<void> = Promise.resolve();
  readonly #toRecycle = new Set<Worker>();
  /** Recycles whose replacement failed to start, tried again after a backoff (the worker asks only once). */
  readonly #recycleRetries = new Set<Worker>();
  /** Failed recycle replacements in a row: the retry backoff's exponent. */
  #recycleFailures = 0;
  /** The primary's onError, when one was given (timeout reports go there as well as to stderr). */
  readonly #onError: ((err: Error, client: null) => void) | null;
  /** The heartbeat check (workerTimeout on). */
  #supervisor: NodeJS.Timeout | null = null;
  /** When the check last ran, and from when silences count (after the primary itself was stalled). */
  #lastCheck = 0;
  #countFrom = 0;
  /** A worker killed for its timeout whose replacement does not listen yet: no other is considered meanwhile. */
  #timingOut = false;

  constructor(opts: NormalizedOptions) {
    super();
    this.#size = opts.parallelism;
    this.#shutdownTimeout = opts.shutdownTimeout;
    this.#workerTimeout = opts.workerTimeout;
    this.#maxRss = opts.maxRss;
    this.#onError = opts.userOnError ? opts.conn.onError : null;
  }

  async start(options: ServeOptions, opts: NormalizedOptions, chooseTransport: () => 'native' | 'net'): Promise<void> {
    const socket = options.socket;
    if (socket instanceof NetServer || options.listen !== undefined || options.createServer !== undefined) {
      throw new ScgiError(
        'ERR_SCGI_INVALID_OPTION',
        "parallelism > 1 works with address/port or an inherited socket (socket: 'systemd' or { fd }), not with a net.Server, listen or createServer",
      );
    }
    if (!isMainThread) {
      // cluster.fork() runs the process's main script, not this thread's code.
      throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'parallelism > 1 needs the main thread: a worker thread cannot be a cluster primary');
    }
    this.transport = chooseTransport();
    if (socket !== undefined) {
      // Socket activation or an inherited descriptor: the primary holds it for
      // its whole life and hands a copy to every worker, as it does with the
      // socket it binds (both transports). It is not ours to unlink.
      this.#listenFd = socket === 'systemd' ? systemdFd() : socket.fd;
      this.#inheritedSocket = true;
    } else {
      const resolved = resolveAddress(options.address, options.port);
      if (resolved.kind === 'unix') {
        const file = new UnixSocketFile(resolved.path, opts.socketMode, opts.socketGroup);
        await file.prepare(options.address === undefined && options.port === undefined);
        this.#socketFile = file;
      }
      if (this.transport === 'native') await this.#bind(resolved, await this.#ip(resolved));
    }
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ silent: false });
    // Not while debugging: a worker paused at a breakpoint is not blocked.
    this.#supervising = this.#workerTimeout > 0 && !(await debugging()) ? this.#workerTimeout : 0;
    this.#startTimeout = this.#supervising > 0 ? Math.max(this.#supervising, MIN_START_TIMEOUT) : 0;
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.#size; i++) ready.push(this.#fork());
    try {
      await Promise.all(ready);
    } catch (err) {
      // A worker failed before listening: serve() rejects, and nothing of it
      // may keep running (no restarts, no other workers, no socket file).
      await this.close();
      throw err;
    }
    this.#untrack = trackForSignals(this, opts.handleSignals);
    if (this.#supervising > 0) {
      this.#lastCheck = this.#countFrom = Date.now();
      this.#supervisor = setInterval(() => this.#checkHeartbeats(), SUPERVISION_TICK);
      this.#supervisor.unref();
    }
  }

  /**
   * Every SUPERVISION_TICK ms: a worker that listens and has sent no
   * heartbeat for workerTimeout ms is blocked. One at a time: while the
   * replacement of one killed for this does not listen yet, no other is
   * considered. If this check itself ran late by half a workerTimeout (the
   * primary was stopped or starved, not only the workers), silences count
   * from now.
   */
  #checkHeartbeats(): void {
    const now = Date.now();
    if (now - this.#lastCheck > this.#workerTimeout / 2) this.#countFrom = now;
    this.#lastCheck = now;
    if (this.#timingOut || this.#closing !== null) return;
    for (const { key: worker, record } of this.#records.check(now)) {
      if (this.#planned.has(worker)) continue;
      if (now - Math.max(record.lastHeartbeat ?? now, this.#countFrom) < this.#workerTimeout) continue;
      this.#timeOut(worker, record, now - (record.lastHeartbeat ?? now));
      return;
    }
  }

  /**
   * Report a blocked worker (pid, requests in progress from its last
   * heartbeat, the stack its watchdog thread took: src/supervision/watchdog.ts),
   * kill it with SIGKILL (nothing else stops a blocked loop) and fork its
   * replacement at once (the exit handler: reason 'timeout', no backoff).
   */
  #timeOut(worker: Worker, record: Readonly<WorkerRecord>, silentFor: number): void {
    this.#timingOut = true;
    this.#planned.set(worker, 'timeout');
    this.#records.stopping(worker);
    this.#askStack(worker).then(({ stack, requests: seen }) => {
      const now = Date.now();
      // What the watchdog thread read as the loop blocked, else the last heartbeat's.
      const inProgress = seen ?? record.heartbeat?.requests ?? [];
      const requests = inProgress.map((r) => ({ method: r.method, uri: r.uri, age: now - r.start }));
      const lines = [
        `worker ${record.pid}: its event loop did not answer for ${silentFor} ms (workerTimeout ${this.#workerTimeout} ms): killed with SIGKILL and replaced`,
        ...describeLoop(stack, inProgress, now),
      ];
      const err = Object.assign(new ScgiError('ERR_SCGI_WORKER_TIMEOUT', lines.join('\n')), { pid: record.pid, requests, loopStack: stack });
      console.error(`scgi: [${err.code}] ${err.message}`);
      try {
        this.#onError?.(err, null);
      } catch {
        // an onError that throws must not take the primary down
      }
      worker.process.kill('SIGKILL');
    });
  }

  /** The stack and requests of a worker's blocked loop, from its watchdog thread (none if it does not answer within STACK_TIMEOUT + 500 ms). */
  #askStack(worker: Worker): Promise<LoopReport> {
    const none: LoopReport = { stack: [], requests: null };
    const pipe = this.#watchdogs.get(worker);
    if (pipe === undefined || pipe.destroyed) return Promise.resolve(none);
    return new Promise<LoopReport>((resolve) => {
      let buffered = '';
      const done = (report: LoopReport) => {
        clearTimeout(timer);
        pipe.off('data', onData);
        resolve(report);
      };
      const onData = (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        const nl = buffered.indexOf('\n');
        if (nl === -1) return;
        try {
          const { stack, requests } = JSON.parse(buffered.slice(0, nl)) as { stack: unknown; requests: unknown };
          done({ stack: Array.isArray(stack) ? stack.map(String) : [], requests: Array.isArray(requests) ? (requests as LoopReport['requests']) : null });
        } catch {
          done(none);
        }
      };
      const timer = setTimeout(() => done(none), STACK_TIMEOUT + 500);
      pipe.on('data', onData);
      pipe.write('stack\n');
    });
  }

  /** The IP literal to bind a TCP address to (a host name is looked up, as in process). */
  async #ip(resolved: ResolvedAddress): Promise<string | null> {
    if (resolved.kind !== 'tcp') return null;
    if (isIP(resolved.host) !== 0) return resolved.host;
    return (await lookup(resolved.host, { family: resolved.family })).address;
  }

  /**
   * Native: bind the listening socket here, once, through the addon (the
   * same bind as the in-process native transport's, src/server/serve.ts), for
   * every worker to adopt. No engine watches it in the primary, so the
   * primary never accepts. A unix socket is bound under the narrowed umask
   * and then claimed (mode, group, inode), as in process.
   */
  async #bind(resolved: ResolvedAddress, ip: string | null): Promise<void> {
    const backlog = backlogOf(resolved);
    const file = this.#socketFile;
    if (resolved.kind === 'unix' && file !== null) {
      [this.#listenFd] = await file.bindListening(
        (path) => listenSocket(path, -1, backlog),
        ([fd]) => closeSync(fd),
      );
      this.#address = file.path;
      return;
    }
    if (resolved.kind !== 'tcp' || ip === null)
      throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'parallelism > 1 listens on a unix socket path or a host and port');
    try {
      const [fd, port] = listenSocket(ip, resolved.port, backlog);
      this.#listenFd = fd;
      this.#address = { address: ip, family: isIP(ip) === 6 ? 'IPv6' : 'IPv4', port };
    } catch (err) {
      throw listenError(err as NodeJS.ErrnoException, formatAddress({ address: ip, port: resolved.port }));
    }
  }

  #closeListenFd(): void {
    if (this.#listenFd === null) return;
    closeSync(this.#listenFd);
    this.#listenFd = null;
  }

  /** SIGHUP (src/server/signals.ts): reload. */
  onHangup(): void {
    this.reload().catch((err) => this.#failed(err));
  }

  /** The second SIGINT (src/server/signals.ts): the process exits now; no worker or socket file may outlive it. */
  abort(): void {
    for (const w of this.#workers) w.process.kill('SIGKILL');
    this.#socketFile?.release();
  }

  /** A replacement worker failed to start: 'error' listeners, else one line; ignored while closing. */
  #failed(err: unknown): void {
    if (this.#closing !== null) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else console.error(`scgi: ${(err as Error).message ?? String(err)}`);
  }

  /**
   * Fork one worker; resolves when it listens, rejects if it exits first.
   * `after`: the worker it replaces (its record's `replacements`) and why.
   */
  #fork(after?: Replacing): Promise<void> {
    const fd = this.#listenFd;
    if (fd !== null) return this.#forkWithSocket(fd, after);
    // A worker keeps the umask it is forked under for its whole life: fork under
    // the process's own, even while an earlier worker's bind has it narrowed.
    const fork = () => this.#spawn(null);
    const worker = this.#socketFile?.outsideNarrowing(fork) ?? fork();
    this.#keepSharedHandle(worker);
    // The primary binds the shared unix socket for the worker (when the worker
    // asks, later): under the narrowed umask it is exactly socketMode from the
    // first moment.
    const bindDone = this.#socketFile?.narrowUmask() ?? (() => {});
    return this.#watch(worker, after, bindDone, (listening) => {
      worker.once('listening', (address: { address: string; port: number; addressType: number | string }) => {
        try {
          this.#afterBind(address);
        } catch (err) {
          listening(err);
          return;
        }
        listening();
      });
    });
  }

  /**
   * Net: remember the listening handle node:cluster sends `worker` (its
   * SharedHandle's, SCHED_NONE: `proc.send(message, handle)` of the
   * worker's ChildProcess), which stays open here until every worker has
   * closed its own. `close()` closes it first, so that the workers, each
   * accepting what waits before closing its copy, hold the last ones: a
   * connection left in the backlog of the primary's copy is reset when that
   * closes. Closing the handle again later (node:cluster does) is a no-op.
   */
  #keepSharedHandle(worker: Worker): void {
    const proc = worker.process as unknown as { send: (...args: unknown[]) => boolean };
    const send = proc.send;
    proc.send = (...args: unknown[]) => {
      const handle = args[1] as { close?: unknown } | null | undefined;
      if (typeof handle?.close === 'function' && (args[0] as { cmd?: unknown } | null)?.cmd === 'NODE_CLUSTER') {
        this.#sharedHandles.add(handle as { close(): void });
      }
      return send.apply(proc, args);
    };
  }

  /**
   * `cluster.fork` a worker. Its stdio is `[0, 1, 2, 'ipc']`, then the
   * listening socket `listenFd` if the primary bound one (native: fd 4 in
   * the worker, named by SCGI_LISTEN_FD), then with workerTimeout on a pipe
   * to its watchdog thread (named by SCGI_WATCHDOG_FD). The stdio setting is
   * node:cluster's, for every fork: it is set for this fork only and put back
   * at once.
   */
  #spawn(listenFd: number | null): Worker {
    const stdio: (string | number)[] = ['inherit', 'inherit', 'inherit', 'ipc'];
    // LISTEN_*: the socket systemd passed is the primary's; a worker gets its copy as SCGI_LISTEN_FD.
    const env: Record<string, string> = { [WORKER_ENV]: '1', [LISTEN_FD_ENV]: '', [WATCHDOG_FD_ENV]: '', LISTEN_FDS: '', LISTEN_PID: '' };
    if (listenFd !== null) {
      env[LISTEN_FD_ENV] = String(stdio.length);
      env[TRANSPORT_ENV] = this.transport;
      stdio.push(listenFd);
    }
    if (this.#workerTimeout > 0) {
      env[WATCHDOG_FD_ENV] = String(stdio.length);
      stdio.push('pipe');
    }
    const before = cluster.settings.stdio;
    cluster.setupPrimary({ stdio });
    let worker: Worker;
    try {
      worker = cluster.fork(env);
    } finally {
      cluster.setupPrimary({ stdio: before });
    }
    // A message to a worker whose channel is closing (it is on its way out:
    // EPIPE, ERR_IPC_CHANNEL_CLOSED) fails with an 'error' on the Worker;
    // unheard, that would end the primary with exit 1. Its 'exit' is what the
    // primary acts on (#watch); any other error is reported.
    worker.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_IPC_CHANNEL_CLOSED' && err.code !== 'ECONNRESET') this.#failed(err);
    });
    if (this.#workerTimeout > 0) {
      const pipe = worker.process.stdio?.[stdio.length - 1] as Socket | null | undefined;
      if (pipe != null) {
        pipe.on('error', () => {});
        pipe.unref();
        this.#watchdogs.set(worker, pipe);
      }
    }
    return worker;
  }

  /**
   * Fork a worker with the socket the primary holds (`#spawn`); it is ready
   * when its message says it listens (which also gives the address of an
   * inherited socket).
   */
  #forkWithSocket(fd: number, after: Replacing | undefined): Promise<void> {
    const worker = this.#spawn(fd);
    return this.#watch(
      worker,
      after,
      () => {},
      (listening) => {
        worker.on('message', (msg: unknown) => {
          if (!isMessage(msg) || msg.scgi !== 'listening') return;
          if (this.#inheritedSocket && this.#address === null) this.#address = msg.address ?? null;
          listening();
        });
      },
    );
  }

  /**
   * Track a forked worker: its reports, its exit (a crash is replaced), and
   * when it listens (`onListening` arranges for `listening` to be called
   * then, with an error if the bind must fail `serve()`). Resolves when it
   * listens, rejects if it exits first.
   */
  #watch(worker: Worker, after: Replacing | undefined, bindDone: () => void, onListening: (listening: (err?: unknown) => void) => void): Promise<void> {
    const started = Date.now();
    this.#workers.add(worker);
    this.#records.add(worker, worker.process.pid!, after);
    /** What the worker said made its serve() reject (reportFailedStart). */
    let startError: ScgiError | null = null;
    worker.on('message', (msg: unknown) => {
      if (isMessage(msg) && msg.scgi === 'failed' && typeof msg.code === 'string' && msg.code.startsWith('ERR_SCGI_')) {
        startError = new ScgiError(msg.code as ScgiErrorCode, String(msg.message));
      } else if (isHeartbeat(msg)) {
        this.#records.beat(worker, msg);
        if (this.#maxRss > 0 && msg.rss > this.#maxRss) this.#recycle(worker);
      } else if (isMessage(msg) && msg.scgi === 'recycle') this.#recycle(worker);
    });
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      // workerTimeout (at least MIN_START_TIMEOUT) bounds a worker's start too (gunicorn's timeout does):
      // one that hangs before it listens (a top-level await that never
      // settles, a loop in its module code) is killed, and fails as a worker
      // that exits before listening does.
      let startTimedOut = false;
      const startTimer =
        this.#startTimeout > 0
          ? setTimeout(() => {
              if (listening || worker.isDead()) return;
              startTimedOut = true;
              worker.process.kill('SIGKILL');
            }, this.#startTimeout)
          : null;
      onListening((err?: unknown) => {
        if (listening) return;
        listening = true;
        if (startTimer !== null) clearTimeout(startTimer);
        this.#listening.add(worker);
        this.#records.listening(worker);
        bindDone();
        if (err !== undefined) reject(err);
        else resolve();
      });
      worker.once('exit', (code, signal) => {
        if (startTimer !== null) clearTimeout(startTimer);
        this.#retiring.delete(worker);
        this.#workers.delete(worker);
        this.#listening.delete(worker);
        this.#watchdogs.get(worker)?.destroy();
        this.#watchdogs.delete(worker);
        const planned = this.#planned.get(worker);
        this.#planned.delete(worker);
        const record = this.#records.remove(worker)!;
        const last = record.heartbeat;
        if (last !== null) for (const k of Object.keys(this.#gone) as (keyof ScgiStats)[]) this.#gone[k] += last.stats[k];
        if (!listening) {
          bindDone();
          const pid = worker.process.pid;
          const why = startTimedOut
            ? `did not listen within ${this.#startTimeout} ms of its start (workerTimeout ${this.#workerTimeout} ms, at least ${MIN_START_TIMEOUT} ms for a start): killed with SIGKILL`
            : `exited (${signal ?? code}) before listening`;
          reject(startError ?? new ScgiError('ERR_SCGI_WORKER_FAILED', `worker ${pid} ${why}`));
        }
        const reason: ExitReason = planned ?? (startTimedOut ? 'timeout' : this.#closing !== null || worker.exitedAfterDisconnect ? 'shutdown' : 'crash');
        this.emit('workerExit', { pid: worker.process.pid, code, signal, reason });
        if (!listening) {
          // A failed start (an exit before listening, or killed at the start
          // deadline). Only a worker that took a dead one's place (a crash's
          // or a timeout's replacement) is tried again, with backoff. A
          // reload or recycle step's replacement leaves the old worker
          // serving (#replace; a restart would grow the pool past
          // parallelism), and a failure at serve()'s start closes the primary.
          if (this.#closing === null && (after?.reason === 'crash' || after?.reason === 'timeout')) this.#replaceCrashed(started, record);
          return;
        }
        if (reason === 'timeout') {
          // Blocked, killed: replaced at once, not counted as a crash. The next
          // blocked worker is considered once this replacement listens.
          if (this.#closing === null) {
            this.#fork({ replacements: record.replacements, reason })
              .catch((err) => this.#failed(err))
              .finally(() => (this.#timingOut = false));
          } else this.#timingOut = false;
          return;
        }
        if (reason !== 'crash' || this.#closing !== null) return;
        this.#replaceCrashed(started, record);
      });
    });
  }

  /** Replace a crashed worker (forked at `started`), backing off while crashes repeat. */
  #replaceCrashed(started: number, record: Readonly<WorkerRecord>): void {
    if (Date.now() - started > STABLE_AFTER) this.#crashes = 0;
    const delay = Math.min(MAX_BACKOFF, 100 * 2 ** this.#crashes);
    this.#crashes++;
    this.#restartAfter(delay, { replacements: record.replacements, reason: 'crash' });
  }

  /**
   * Fork a replacement after `delay` ms. The timer is ref'd: when every worker
   * died at once it is what keeps the primary running (an unref'd one let the
   * process end, exit 0, with the socket gone). A replacement that fails is
   * itself replaced, with the backoff growing: the primary never gives up.
   */
  #restartAfter(delay: number, after: Replacing): void {
    const timer = setTimeout(() => {
      this.#restarts.delete(timer);
      if (this.#closing === null) this.#fork(after).catch((err) => this.#failed(err));
    }, delay);
    this.#restarts.add(timer);
  }

  #afterBind(address: { address: string; port: number; addressType: number | string }): void {
    const file = this.#socketFile;
    if (file !== null) {
      file.claim();
      this.#address = file.path;
    } else {
      const family = address.addressType === 6 || address.addressType === 'IPv6' ? 'IPv6' : 'IPv4';
      this.#address = { address: address.address, port: address.port, family };
    }
  }

  /** Replace workers one by one: a new one listens before an old one stops. */
  async reload(): Promise<void> {
    if (this.#reloading || this.#closing !== null) return;
    this.#reloading = true;
    try {
      for (const old of [...this.#workers]) {
        if (this.#closing !== null) break;
        // one already going (recycled, timed out) is replaced already
        if (this.#planned.has(old) || old.isDead()) continue;
        await this.#replace(old, 'reload');
      }
      this.emit('reload');
    } finally {
      this.#reloading = false;
    }
  }

  /**
   * A reload step: fork `old`'s replacement, and once it listens ask `old` to
   * finish its requests and exit. If the replacement fails, `old` serves on
   * (and the error rejects).
   */
  async #replace(old: Worker, reason: 'reload' | 'recycle'): Promise<void> {
    const record = this.#records.get(old);
    this.#planned.set(old, reason);
    try {
      await this.#fork(record === undefined ? undefined : { replacements: record.replacements, reason });
    } catch (err) {
      if (this.#planned.get(old) === reason) this.#planned.delete(old);
      throw err;
    }
    await this.#retire(old, reason);
  }

  /**
   * maxRequests, maxRss or `server.recycle()`: replace `worker` (once), after
   * the recycles before it. If the replacement fails to start (a broken
   * deploy on disk), `worker` serves on and its recycle is tried again after
   * a backoff (1 s doubling to 10 s): a worker asks only once, and a leaking
   * one must still be replaced once a replacement can start.
   */
  #recycle(worker: Worker): void {
    if (this.#toRecycle.has(worker) || this.#recycleRetries.has(worker) || this.#planned.has(worker)) return;
    if (this.#closing !== null || !this.#listening.has(worker)) return;
    this.#toRecycle.add(worker);
    this.#recycling = this.#recycling.then(async () => {
      this.#toRecycle.delete(worker);
      if (this.#closing !== null || worker.isDead() || this.#planned.has(worker)) return;
      try {
        await this.#replace(worker, 'recycle');
        this.#recycleFailures = 0;
      } catch (err) {
        this.#failed(err);
        if (this.#closing !== null || worker.isDead()) return;
        const delay = Math.min(MAX_BACKOFF, 1000 * 2 ** this.#recycleFailures++);
        const timer = setTimeout(() => {
          this.#restarts.delete(timer);
          this.#recycleRetries.delete(worker);
          this.#recycle(worker);
        }, delay);
        this.#restarts.add(timer);
        this.#recycleRetries.add(worker);
      }
    });
  }

  /** Ask a worker to finish its requests and exit; kill it after shutdownTimeout. */
  #retire(worker: Worker, reason: ExitReason): Promise<void> {
    if (!this.#planned.has(worker)) this.#planned.set(worker, reason);
    this.#retiring.add(worker);
    this.#records.stopping(worker);
    return new Promise<void>((resolve) => {
      if (worker.isDead()) return resolve();
      // Within the timer range: shutdownTimeout may be up to 2^31-1 itself.
      const timer = setTimeout(() => worker.process.kill('SIGKILL'), Math.min(this.#shutdownTimeout + 1000, MAX_TIMEOUT));
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (!this.#listening.has(worker)) {
        // Still starting: it may not listen for messages yet (a message that
        // arrives before the worker's listener is lost), and it serves nothing.
        // SIGTERM stops it: by default before it listens, gracefully after.
        worker.process.kill('SIGTERM');
        return;
      }
      // A channel already closed (the worker is exiting on its own, or closed
      // it): SIGTERM, which a listening worker takes as a graceful stop too.
      const stop = () => {
        if (!worker.isDead()) worker.process.kill('SIGTERM');
      };
      if (!worker.isConnected()) return stop();
      const msg: ClusterMessage = { scgi: 'shutdown' };
      try {
        worker.send(msg, undefined, (err: Error | null) => {
          if (err) stop();
        });
      } catch {
        stop();
      }
    });
  }

  /** Pids of the live workers. */
  get workers(): number[] {
    return [...this.#workers].map((w) => w.process.pid!).filter((p) => p !== undefined);
  }

  address(): string | AddressInfo | null {
    return this.#address;
  }

  /**
   * Internal (for the status endpoint and tests): the record of each live
   * worker, in fork order (src/supervision/heartbeat.ts, `WorkerRecord`).
   * The objects are the primary's own, updated in place as heartbeats come:
   * read them, never write them.
   */
  workerRecords(): readonly Readonly<WorkerRecord>[] {
    this.#records.check(Date.now());
    return this.#records.all();
  }

  /** The workers' counters summed (each reports every HEARTBEAT_INTERVAL ms, and when it exits). */
  get stats(): ScgiStats {
    const sum = { ...this.#gone };
    for (const { heartbeat } of this.#records.all()) {
      if (heartbeat === null) continue;
      for (const k of Object.keys(sum) as (keyof ScgiStats)[]) sum[k] += heartbeat.stats[k];
    }
    return sum;
  }

  /** Open connections, as the workers last reported them. */
  getConnections(): Promise<number> {
    let open = 0;
    for (const { heartbeat } of this.#records.all()) open += heartbeat?.open ?? 0;
    return Promise.resolve(open);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#untrack();
    for (const t of this.#restarts) clearTimeout(t);
    this.#restarts.clear();
    // A graceful stop serves every connection that reached the socket. A
    // connection left in the backlog when the last copy of the socket closes
    // is reset, and one held here is accepted by nobody: the socket stops
    // taking connections first (a unix socket's path goes, so new ones are
    // refused), the primary's copy of a native one goes too, and each worker
    // accepts what waits before closing its own (src/server/serve.ts,
    // closeListener), so the last to close drains it right before.
    if (this.#supervisor !== null) clearInterval(this.#supervisor);
    this.#socketFile?.release();
    this.#closeListenFd();
    for (const handle of this.#sharedHandles) handle.close();
    this.#sharedHandles.clear();
    await Promise.all([...this.#workers].map((w) => this.#retire(w, 'shutdown')));
    this.emit('close');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Become the cluster primary: fork `opts.parallelism` workers; resolves when all listen. */
export async function startCluster(options: ServeOptions, opts: NormalizedOptions, chooseTransport: () => 'native' | 'net'): Promise<ScgiServer> {
  const primary = new ClusterPrimary(opts);
  await primary.start(options, opts, chooseTransport);
  if (opts.statusAddress !== null) await startPrimaryStatus(primary, opts);
  return primary;
}
