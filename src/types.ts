/**
 * Public types shared by the in-process server (`src/server/serve.ts`), the cluster
 * primary (`src/server/cluster.ts`) and the connection lifecycle (`src/connection/lifecycle.ts`).
 */
import type { EventEmitter } from 'node:events';
import type { AddressInfo, Server as NetServer } from 'node:net';

/** Counters, since the server started. */
export interface ScgiStats {
  /** Connections accepted. */
  connections: number;
  /** Requests handed to the handler. */
  requests: number;
  /** Connections closed for bad input (malformed or over a limit) without a handler call. */
  rejected: number;
  /** Connections closed by headerTimeout, bodyTimeout/minBodyRate or requestTimeout. */
  timeouts: number;
  /** Handler errors caught (thrown, rejected, or emitted on the client). */
  errors: number;
  /** Connections answered 503 because maxConnections were open. */
  overloaded: number;
  /**
   * Connections answered 503 because the process was near its file
   * descriptor limit (`ulimit -n`), and accepts that failed with EMFILE/ENFILE.
   */
  fdExhausted: number;
}

/** All counters at zero. */
export function zeroStats(): ScgiStats {
  return { connections: 0, requests: 0, rejected: 0, timeouts: 0, errors: 0, overloaded: 0, fdExhausted: 0 };
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
  /** Which transport carries the connections (a cluster primary: its workers'). */
  readonly transport: 'native' | 'net';
  /** Cluster primary only (`parallelism` > 1): pids of the live workers. */
  readonly workers?: number[];
  /** Cluster primary only: replace the workers one by one (what SIGHUP does). */
  reload?(): Promise<void>;
  /**
   * In a cluster worker: ask the primary for this worker's replacement (the
   * replacement listens first; this one then finishes its requests and
   * exits). Throws `ERR_SCGI_NOT_SUPERVISED` without a primary.
   */
  recycle?(): void;
  [Symbol.asyncDispose](): Promise<void>;
}
