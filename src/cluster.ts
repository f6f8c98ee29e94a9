/**
 * `parallelism` > 1: this process becomes a node:cluster primary that forks
 * workers running the same script. Workers accept on the shared listening
 * socket directly (SCHED_NONE): Node's default round-robin passes every
 * connection through the primary, which triples the CPU per SCGI request.
 *
 * The primary prepares the unix socket path (stale socket removed, a live
 * one or a non-socket refused), binds it under a umask that gives exactly
 * `socketMode`, restarts crashed workers with backoff, replaces workers one
 * by one on SIGHUP, and on SIGTERM/SIGINT lets every worker finish its
 * requests, removes the socket file and exits 0.
 */
import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { prepareUnixPath, resolveAddress } from './address.ts';
import type { ScgiStats } from './connection.ts';
import { ScgiError } from './errors.ts';
import { normalizeOptions, trackForSignals, type ScgiServer, type ServeOptions } from './server.ts';

const MAX_BACKOFF = 10_000;
const STABLE_AFTER = 10_000;

class ClusterPrimary extends EventEmitter implements ScgiServer {
  readonly server = null;
  /** Last counters each live worker reported, and the sums of the workers that are gone. */
  readonly #reported = new Map<Worker, { stats: ScgiStats; open: number }>();
  readonly #gone: ScgiStats = { connections: 0, requests: 0, rejected: 0, timeouts: 0, errors: 0, overloaded: 0 };
  readonly #size: number;
  readonly #shutdownTimeout: number;
  readonly #workers = new Set<Worker>();
  readonly #retiring = new Set<Worker>();
  readonly #listening = new Set<Worker>();
  #address: string | AddressInfo | null = null;
  #socketPath: { path: string; mode: number; group: number | undefined; ino: number } | null = null;
  #closing: Promise<void> | null = null;
  #crashes = 0;
  #untrack: () => void = () => {};
  #reloading = false;
  #oldUmask: number | null = null;
  #pendingBinds = 0;

  constructor(size: number, shutdownTimeout: number) {
    super();
    this.#size = size;
    this.#shutdownTimeout = shutdownTimeout;
  }

  async start(options: ServeOptions, opts: ReturnType<typeof normalizeOptions>): Promise<void> {
    if (options.socket !== undefined || options.listen !== undefined || options.createServer !== undefined) {
      throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'parallelism > 1 works with address/port, not with socket, listen or createServer');
    }
    const resolved = resolveAddress(options.address, options.port);
    if (resolved.kind === 'unix') {
      await prepareUnixPath(resolved.path, options.address === undefined && options.port === undefined);
      this.#socketPath = { path: resolved.path, mode: opts.socketMode, group: opts.socketGroup, ino: 0 };
    }
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ silent: false });
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.#size; i++) ready.push(this.#fork());
    await Promise.all(ready);
    this.#untrack = trackForSignals(this, opts.handleSignals);
    if (opts.handleSignals) process.on('SIGHUP', this.#onHup);
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

  /** Fork one worker; resolves when it listens, rejects if it exits first. */
  #fork(): Promise<void> {
    // While the primary binds the shared unix socket for a worker, the umask
    // makes it exactly socketMode from the first moment.
    if (this.#socketPath !== null && this.#pendingBinds++ === 0) {
      this.#oldUmask = process.umask(~this.#socketPath.mode & 0o777);
    }
    const worker = cluster.fork({ SCGI_WORKER: '1' });
    const started = Date.now();
    this.#workers.add(worker);
    worker.on('message', (msg: unknown) => {
      const m = msg as { scgi?: string; stats?: ScgiStats; open?: number } | null;
      if (m !== null && typeof m === 'object' && m.scgi === 'stats' && m.stats) {
        this.#reported.set(worker, { stats: m.stats, open: m.open ?? 0 });
      }
    });
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      const bindDone = () => {
        if (this.#socketPath !== null && --this.#pendingBinds === 0 && this.#oldUmask !== null) {
          process.umask(this.#oldUmask);
          this.#oldUmask = null;
        }
      };
      worker.once('listening', (address: { address: string; port: number; addressType: number | string }) => {
        listening = true;
        this.#listening.add(worker);
        bindDone();
        this.#afterBind(address);
        resolve();
      });
      worker.once('exit', (code, signal) => {
        const retired = this.#retiring.delete(worker);
        this.#workers.delete(worker);
        this.#listening.delete(worker);
        const last = this.#reported.get(worker);
        if (last !== undefined) {
          for (const k of Object.keys(this.#gone) as (keyof ScgiStats)[]) this.#gone[k] += last.stats[k];
          this.#reported.delete(worker);
        }
        if (!listening) {
          bindDone();
          reject(new ScgiError('ERR_SCGI_HANDLER', `worker ${worker.process.pid} exited (${signal ?? code}) before listening`));
        }
        if (this.#closing !== null || retired || worker.exitedAfterDisconnect) return;
        // A crash: replace it, backing off while crashes repeat.
        if (Date.now() - started > STABLE_AFTER) this.#crashes = 0;
        const delay = Math.min(MAX_BACKOFF, 100 * 2 ** this.#crashes);
        this.#crashes++;
        this.emit('workerExit', { pid: worker.process.pid, code, signal });
        setTimeout(() => {
          if (this.#closing === null) this.#fork().catch((err) => this.#failed(err));
        }, delay).unref();
      });
    });
  }

  #afterBind(address: { address: string; port: number; addressType: number | string }): void {
    const sp = this.#socketPath;
    if (sp !== null) {
      chmodSync(sp.path, sp.mode);
      if (sp.group !== undefined) chownSync(sp.path, -1, sp.group);
      sp.ino = lstatSync(sp.path).ino;
      this.#address = sp.path;
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
        await this.#fork();
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
    return new Promise<void>((resolve) => {
      if (worker.isDead()) return resolve();
      const timer = setTimeout(() => worker.process.kill('SIGKILL'), this.#shutdownTimeout + 1000);
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
        worker.send({ scgi: 'shutdown' });
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

  /** The workers' counters summed (each reports about once a second, and when it exits). */
  get stats(): ScgiStats {
    const sum = { ...this.#gone };
    for (const { stats } of this.#reported.values()) {
      for (const k of Object.keys(sum) as (keyof ScgiStats)[]) sum[k] += stats[k];
    }
    return sum;
  }

  /** Open connections, as the workers last reported them. */
  getConnections(): Promise<number> {
    let open = 0;
    for (const r of this.#reported.values()) open += r.open;
    return Promise.resolve(open);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#untrack();
    process.off('SIGHUP', this.#onHup);
    await Promise.all([...this.#workers].map((w) => this.#retire(w)));
    const sp = this.#socketPath;
    if (sp !== null) {
      try {
        const st = lstatSync(sp.path);
        if (st.isSocket() && st.ino === sp.ino) unlinkSync(sp.path);
      } catch {
        // already gone
      }
    }
    this.emit('close');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export type ClusterServer = ClusterPrimary;

/** @internal */
export async function startCluster(options: ServeOptions, opts: ReturnType<typeof normalizeOptions>): Promise<ScgiServer> {
  const primary = new ClusterPrimary(opts.parallelism, opts.shutdownTimeout);
  await primary.start(options, opts);
  return primary;
}
