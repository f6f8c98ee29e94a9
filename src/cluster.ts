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
 * handle). Either way the socket stays open in the primary until it closes,
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
import { isIP, type AddressInfo } from 'node:net';
import { formatAddress, resolveAddress, type ResolvedAddress } from './address.ts';
import { listenError, ScgiError } from './errors.ts';
import { MAX_TIMEOUT, type NormalizedOptions, type ServeOptions } from './options.ts';
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
} from './supervision/heartbeat.ts';
import { startPrimaryStatus } from './status/primary.ts';
import { listenSocket } from './transport/native-engine.ts';
import { zeroStats, type ScgiServer, type ScgiStats } from './types.ts';
import { UnixSocketFile } from './unix-socket.ts';

/** The IPC messages between the primary and a worker. */
export type ClusterMessage =
  /** worker → primary: its counters, requests in progress, memory (every HEARTBEAT_INTERVAL ms, and on exit). */
  | Heartbeat
  /** worker → primary: its server listens and it takes `shutdown` (what the primary waits for on the native transport). */
  | { scgi: 'listening' }
  /** primary → worker: finish the requests in progress, then exit 0. */
  | { scgi: 'shutdown' };

/** The environment variable that marks a process forked by the primary. */
const WORKER_ENV = 'SCGI_WORKER';
/** The environment variable naming the descriptor of the listening socket a native worker inherits. */
const LISTEN_FD_ENV = 'SCGI_LISTEN_FD';

const MAX_BACKOFF = 10_000;
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
 * In a worker of a primary that chose the native transport: the descriptor
 * of the listening socket it inherited (the worker adopts it and closes this
 * copy), else null (net: node:cluster shares the socket). Taken once: the
 * variable is removed, so a later `serve()` never mistakes another
 * descriptor that got the number for the socket.
 */
export function takeInheritedListenFd(): number | null {
  if (!isClusterWorker()) return null;
  const value = process.env[LISTEN_FD_ENV];
  delete process.env[LISTEN_FD_ENV];
  const fd = Number(value);
  return value !== undefined && value !== '' && Number.isInteger(fd) && fd >= 0 ? fd : null;
}

/** What a worker's in-process server offers `runWorker`. */
export interface WorkerServer extends HeartbeatSource {
  /** Connections accepted whose request has not started yet. */
  readonly awaitingHeader: number;
  stopAccepting(): void;
  close(): Promise<void>;
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
  server.stopAccepting();
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
export function runWorker(server: WorkerServer): void {
  const heartbeats = new HeartbeatMaker(server);
  const report = (then?: () => void) => {
    if (!process.connected) return then?.();
    const msg: ClusterMessage = heartbeats.make();
    process.send!(msg, undefined, {}, () => then?.());
  };
  const timer = setInterval(() => report(), HEARTBEAT_INTERVAL);
  timer.unref();
  // The primary asks only workers that listen (one still starting gets SIGTERM).
  process.on('message', (msg: unknown) => {
    if (!isMessage(msg) || msg.scgi !== 'shutdown') return;
    handOver(server).then(() => {
      clearInterval(timer);
      report(() => process.exit(0));
    });
  });
  if (process.connected) {
    const msg: ClusterMessage = { scgi: 'listening' };
    process.send!(msg);
  }
}

// ---- the primary side ----

/** A fork that replaces a worker: the replaced worker's counts and why it is replaced. */
type Replacing = { replacements: Readonly<Record<ExitReason, number>>; reason: ExitReason };

class ClusterPrimary extends EventEmitter implements ScgiServer {
  readonly server = null;
  /** The workers' transport, chosen here as in process (`chooseTransport`, src/server.ts) and followed by every worker. */
  transport: 'native' | 'net' = 'net';
  /** Native: the listening socket the primary bound, open until it closes (each worker gets a copy). */
  #listenFd: number | null = null;
  /** One record per live worker (its last heartbeat has its counters), and the sums of the workers that are gone. */
  readonly #records = new WorkerRecords<Worker>();
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

  constructor(size: number, shutdownTimeout: number) {
    super();
    this.#size = size;
    this.#shutdownTimeout = shutdownTimeout;
  }

  async start(options: ServeOptions, opts: NormalizedOptions, chooseTransport: () => 'native' | 'net'): Promise<void> {
    if (options.socket !== undefined || options.listen !== undefined || options.createServer !== undefined) {
      throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'parallelism > 1 works with address/port, not with socket, listen or createServer');
    }
    this.transport = chooseTransport();
    const resolved = resolveAddress(options.address, options.port);
    if (resolved.kind === 'unix') {
      const file = new UnixSocketFile(resolved.path, opts.socketMode, opts.socketGroup);
      await file.prepare(options.address === undefined && options.port === undefined);
      this.#socketFile = file;
    }
    if (this.transport === 'native') this.#bind(resolved, await this.#ip(resolved));
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ silent: false });
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
    if (opts.handleSignals) process.on('SIGHUP', this.#onHup);
  }

  /** The IP literal to bind a TCP address to (a host name is looked up, as in process). */
  async #ip(resolved: ResolvedAddress): Promise<string | null> {
    if (resolved.kind !== 'tcp') return null;
    if (isIP(resolved.host) !== 0) return resolved.host;
    return (await lookup(resolved.host, { family: resolved.family })).address;
  }

  /**
   * Native: bind the listening socket here, once, through the addon (the
   * same bind as the in-process native transport's, src/server.ts), for
   * every worker to adopt. No engine watches it in the primary, so the
   * primary never accepts. A unix socket is bound under the narrowed umask
   * and then claimed (mode, group, inode), as in process.
   */
  #bind(resolved: ResolvedAddress, ip: string | null): void {
    const backlog = resolved.listen.backlog ?? 511;
    const file = this.#socketFile;
    if (resolved.kind === 'unix' && file !== null) {
      const bound = file.narrowUmask();
      try {
        [this.#listenFd] = listenSocket(resolved.path, -1, backlog);
      } catch (err) {
        throw listenError(err as NodeJS.ErrnoException, resolved.path);
      } finally {
        bound();
      }
      try {
        file.claim();
      } catch (err) {
        this.#closeListenFd();
        throw err;
      }
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

  #onHup = (): void => {
    this.reload().catch((err) => this.#failed(err));
  };

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
    if (fd !== null) return this.#forkNative(fd, after);
    // A worker keeps the umask it is forked under for its whole life: fork under
    // the process's own, even while an earlier worker's bind has it narrowed.
    const fork = () => cluster.fork({ [WORKER_ENV]: '1', [LISTEN_FD_ENV]: '' });
    const worker = this.#socketFile?.outsideNarrowing(fork) ?? fork();
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
   * Fork a native worker: the listening socket goes to it as the descriptor
   * after the IPC channel (stdio `[0, 1, 2, 'ipc', fd]`, so fd 4 in the
   * worker, named by SCGI_LISTEN_FD); it is ready when its message says it
   * listens. The stdio setting is node:cluster's, for every fork: it is set
   * for this fork only and put back at once.
   */
  #forkNative(fd: number, after: Replacing | undefined): Promise<void> {
    const stdio = ['inherit', 'inherit', 'inherit', 'ipc', fd];
    const before = cluster.settings.stdio;
    cluster.setupPrimary({ stdio });
    let worker: Worker;
    try {
      worker = cluster.fork({ [WORKER_ENV]: '1', [LISTEN_FD_ENV]: String(stdio.length - 1) });
    } finally {
      cluster.setupPrimary({ stdio: before });
    }
    return this.#watch(
      worker,
      after,
      () => {},
      (listening) => {
        worker.on('message', (msg: unknown) => {
          if (isMessage(msg) && msg.scgi === 'listening') listening();
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
    worker.on('message', (msg: unknown) => {
      if (isHeartbeat(msg)) this.#records.beat(worker, msg);
    });
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      onListening((err?: unknown) => {
        if (listening) return;
        listening = true;
        this.#listening.add(worker);
        this.#records.listening(worker);
        bindDone();
        if (err !== undefined) reject(err);
        else resolve();
      });
      worker.once('exit', (code, signal) => {
        const retired = this.#retiring.delete(worker);
        this.#workers.delete(worker);
        this.#listening.delete(worker);
        const record = this.#records.remove(worker)!;
        const last = record.heartbeat;
        if (last !== null) for (const k of Object.keys(this.#gone) as (keyof ScgiStats)[]) this.#gone[k] += last.stats[k];
        if (!listening) {
          bindDone();
          reject(new ScgiError('ERR_SCGI_WORKER_FAILED', `worker ${worker.process.pid} exited (${signal ?? code}) before listening`));
        }
        if (this.#closing !== null || retired || worker.exitedAfterDisconnect) return;
        // A crash: replace it, backing off while crashes repeat.
        if (Date.now() - started > STABLE_AFTER) this.#crashes = 0;
        const delay = Math.min(MAX_BACKOFF, 100 * 2 ** this.#crashes);
        this.#crashes++;
        this.emit('workerExit', { pid: worker.process.pid, code, signal });
        this.#restartAfter(delay, { replacements: record.replacements, reason: 'crash' });
      });
    });
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
        const record = this.#records.get(old);
        await this.#fork(record === undefined ? undefined : { replacements: record.replacements, reason: 'reload' });
        await this.#retire(old);
      }
      this.emit('reload');
    } finally {
      this.#reloading = false;
    }
  }

  /** Ask a worker to finish its requests and exit; kill it after shutdownTimeout. */
  #retire(worker: Worker): Promise<void> {
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
      try {
        const msg: ClusterMessage = { scgi: 'shutdown' };
        worker.send(msg);
      } catch {
        worker.process.kill('SIGTERM');
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
    process.off('SIGHUP', this.#onHup);
    for (const t of this.#restarts) clearTimeout(t);
    this.#restarts.clear();
    await Promise.all([...this.#workers].map((w) => this.#retire(w)));
    this.#closeListenFd();
    this.#socketFile?.release();
    this.emit('close');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Become the cluster primary: fork `opts.parallelism` workers; resolves when all listen. */
export async function startCluster(options: ServeOptions, opts: NormalizedOptions, chooseTransport: () => 'native' | 'net'): Promise<ScgiServer> {
  const primary = new ClusterPrimary(opts.parallelism, opts.shutdownTimeout);
  await primary.start(options, opts, chooseTransport);
  if (opts.statusAddress !== null) await startPrimaryStatus(primary, opts);
  return primary;
}
