/**
 * The status document (`GET /status`, and what `/metrics` and `scgi status`
 * are made from): the server, the totals, the listen queue and one entry per
 * worker. In process (parallelism 1) the one worker is this process
 * (`inProcessDocument`); a cluster primary builds it from its workers'
 * records.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { formatAddress } from '../address.ts';
import { parserInfo } from '../parser/index.ts';
import { zeroStats, type ScgiStats } from '../types.ts';
import { listenQueue } from './listen-queue.ts';
import { DURATION_BUCKETS, type Monitor, type ProcessSnapshot } from './monitor.ts';

export type WorkerState = 'starting' | 'idle' | 'busy' | 'unresponsive' | 'stopping';

/** Why workers were replaced (src/cluster.ts counts them). */
export interface Replacements {
  crash: number;
  timeout: number;
  recycle: number;
  reload: number;
  shutdown: number;
}

export const REPLACEMENT_REASONS: readonly (keyof Replacements)[] = ['crash', 'timeout', 'recycle', 'reload', 'shutdown'];

export function zeroReplacements(): Replacements {
  return { crash: 0, timeout: 0, recycle: 0, reload: 0, shutdown: 0 };
}

export interface RequestInProgress {
  method: string;
  uri: string;
  /** ms since it was dispatched. */
  ageMs: number;
}

export interface WorkerStatus {
  pid: number;
  state: WorkerState;
  /** Requests handed to the handler (its `stats.requests`). */
  requests: number;
  /** Requests in progress now. */
  inProgress: number;
  /** The oldest request in progress, or null. */
  oldestRequest: RequestInProgress | null;
  /** The requests in progress (the oldest ones, at most 20). */
  requestsInProgress: RequestInProgress[];
  /** Open connections. */
  openConnections: number;
  /** Resident set size, bytes. */
  rss: number;
  heapUsed: number;
  /** Event-loop utilisation, 0..1, over the last interval. */
  elu: number;
  /** ms since this worker last reported (0 in process). */
  lastHeartbeatAgeMs: number;
  /** When it started (ISO 8601). */
  startTime: string;
  /** Replacements of this worker slot, by reason. */
  replacements: Replacements;
  /** Its counters. */
  stats: ScgiStats;
}

export interface StatusDocument {
  server: {
    pid: number;
    version: string;
    /** Seconds since the server started. */
    uptime: number;
    transport: 'native' | 'net';
    parser: 'native' | 'js';
    address: string;
    parallelism: number;
  };
  /** The workers' counters summed (`connections` is those accepted), with the requests in progress and open connections. */
  totals: ScgiStats & { inProgress: number; openConnections: number };
  /** Connections waiting in the SCGI socket's accept queue (null where the platform does not say). */
  listenQueue: number | null;
  /** Replacements of workers since the start, by reason (0 in process). */
  replacements: Replacements;
  workers: WorkerStatus[];
  /** The request duration histogram, summed over the workers (for /metrics). */
  durations: { buckets: readonly number[]; counts: number[]; sum: number; count: number };
}

export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
})();

/** One worker's entry from its snapshot. */
export function workerStatus(s: ProcessSnapshot, state: WorkerState, now: number, heartbeatAt: number, replacements: Replacements): WorkerStatus {
  const list = s.requests.map((r) => ({ method: r.method, uri: r.uri, ageMs: Math.max(0, now - r.start) }));
  return {
    pid: s.pid,
    state,
    requests: s.stats.requests,
    inProgress: s.inProgress,
    oldestRequest: list[0] ?? null,
    requestsInProgress: list,
    openConnections: s.open,
    rss: s.rss,
    heapUsed: s.heapUsed,
    elu: s.elu,
    lastHeartbeatAgeMs: Math.max(0, now - heartbeatAt),
    startTime: new Date(s.startTime).toISOString(),
    replacements,
    stats: s.stats,
  };
}

/** The document from the workers' entries and snapshots' histograms. */
export function statusDocument(
  server: Omit<StatusDocument['server'], 'version' | 'parser'>,
  workers: WorkerStatus[],
  histograms: ProcessSnapshot['durations'][],
  queue: number | null,
  replacements: Replacements,
): StatusDocument {
  const totals = { ...zeroStats(), inProgress: 0, openConnections: 0 };
  for (const w of workers) {
    for (const k of Object.keys(w.stats) as (keyof ScgiStats)[]) totals[k] += w.stats[k];
    totals.inProgress += w.inProgress;
    totals.openConnections += w.openConnections;
  }
  const counts: number[] = new Array(DURATION_BUCKETS.length + 1).fill(0);
  let sum = 0;
  let count = 0;
  for (const h of histograms) {
    for (let i = 0; i < counts.length; i++) counts[i]! += h.counts[i] ?? 0;
    sum += h.sum;
    count += h.count;
  }
  return {
    server: { ...server, version: VERSION, parser: parserInfo.backend },
    totals,
    listenQueue: queue,
    replacements,
    workers,
    durations: { buckets: DURATION_BUCKETS, counts, sum, count },
  };
}

/** What the in-process server shows the status endpoint (`InProcessServer`, src/server.ts). */
export interface InProcessSource {
  readonly stats: Readonly<ScgiStats>;
  readonly openConnections: number;
  readonly transport: 'native' | 'net';
  readonly monitor: Monitor | null;
  address(): string | AddressInfo | null;
}

/**
 * How to get a server's document, registered by whoever serves it: the
 * status endpoint (src/status/server.ts), the prom-client bridge
 * (src/status/prom-client.ts) for an in-process server.
 */
const sources = new WeakMap<object, () => StatusDocument>();

export function setDocumentSource(server: object, source: () => StatusDocument): void {
  sources.set(server, source);
}

/** The document source of `server`, or null for an object serve() did not make. */
export function documentOf(server: object): (() => StatusDocument) | null {
  return sources.get(server) ?? null;
}

/** The document of a server at parallelism 1: this process is its one worker. */
export function inProcessDocument(server: InProcessSource, startedAt: number): StatusDocument {
  const now = Date.now();
  const snap = server.monitor!.snapshot(server.stats, server.openConnections);
  const state: WorkerState = snap.inProgress > 0 ? 'busy' : 'idle';
  const address = server.address();
  return statusDocument(
    {
      pid: process.pid,
      uptime: (now - startedAt) / 1000,
      transport: server.transport,
      address: formatAddress(address),
      parallelism: 1,
    },
    [workerStatus(snap, state, now, now, zeroReplacements())],
    [snap.durations],
    listenQueue(address),
    zeroReplacements(),
  );
}
