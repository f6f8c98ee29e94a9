/**
 * The status document (`GET /status`, and what `/metrics`, `scgi status`
 * and `registerMetrics` are made from): the server, the totals, the listen
 * queue and one entry per worker.
 *
 * A worker's entry is made from what the primary knows of it, its
 * `WorkerRecord` (src/supervision/heartbeat.ts: state, start, last heartbeat
 * and that heartbeat, replacements by reason); in process (parallelism 1)
 * the one worker is this process, and its record is made on the spot from a
 * heartbeat of its own (`inProcessDocument`). The request duration histogram
 * comes from each process's monitor (src/status/monitor.ts), in the
 * heartbeat's `durations`.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { formatAddress } from '../address.ts';
import type { Lifecycle } from '../connection/lifecycle.ts';
import { parserInfo } from '../parser/index.ts';
import { EXIT_REASONS, HeartbeatMaker, type ExitReason, type WorkerRecord, type WorkerState } from '../supervision/heartbeat.ts';
import { zeroStats, type ScgiStats } from '../types.ts';
import { listenQueue } from './listen-queue.ts';
import { DURATION_BUCKETS, type Durations, type Monitor } from './monitor.ts';

export type { WorkerState } from '../supervision/heartbeat.ts';

/** Workers replaced, by reason (src/server/cluster.ts counts them). */
export type Replacements = Record<ExitReason, number>;

export const REPLACEMENT_REASONS: readonly ExitReason[] = EXIT_REASONS;

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
  /** Requests in progress. */
  inProgress: number;
  /** The oldest request in progress, or null. */
  oldestRequest: RequestInProgress | null;
  /** The requests in progress (the oldest ones, at most 16). */
  requestsInProgress: RequestInProgress[];
  /** Open connections. */
  openConnections: number;
  /** Resident set size, bytes. */
  rss: number;
  heapUsed: number;
  /** Event-loop utilisation, 0..1, over the last heartbeat interval. */
  elu: number;
  /** ms since this worker last reported (null before its first report). */
  lastHeartbeatAgeMs: number | null;
  /** When it started (ISO 8601). */
  startTime: string;
  /** Replacements in this worker's line (the workers it took over from), by reason. */
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
  /** The counters summed over the workers (`connections` is those accepted), with the requests in progress and open connections. */
  totals: ScgiStats & { inProgress: number; openConnections: number };
  /** Connections waiting in the SCGI socket's accept queue (null where the platform does not say). */
  listenQueue: number | null;
  /** Workers replaced since the start, by reason. */
  replacements: Replacements;
  workers: WorkerStatus[];
  /** The request duration histogram summed over the workers (for /metrics). */
  durations: { buckets: readonly number[] } & Durations;
}

export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
})();

/** One worker's entry from its record. */
export function workerStatus(r: Readonly<WorkerRecord>, now: number): WorkerStatus {
  const h = r.heartbeat;
  const list = (h?.requests ?? []).map((q) => ({ method: q.method, uri: q.uri, ageMs: Math.max(0, now - q.start) }));
  const stats = h === null ? zeroStats() : { ...h.stats };
  return {
    pid: r.pid,
    state: r.state,
    requests: stats.requests,
    inProgress: h?.inProgress ?? 0,
    oldestRequest: list[0] ?? null,
    requestsInProgress: list,
    openConnections: h?.open ?? 0,
    rss: h?.rss ?? 0,
    heapUsed: h?.heapUsed ?? 0,
    elu: h?.elu ?? 0,
    lastHeartbeatAgeMs: r.lastHeartbeat === null ? null : Math.max(0, now - r.lastHeartbeat),
    startTime: new Date(r.startTime).toISOString(),
    replacements: { ...r.replacements },
    stats,
  };
}

/** Sum histograms. */
export function addDurations(into: Durations, h: Durations | undefined): void {
  if (h === undefined) return;
  for (let i = 0; i < into.counts.length; i++) into.counts[i]! += h.counts[i] ?? 0;
  into.sum += h.sum;
  into.count += h.count;
}

export function zeroDurations(): Durations {
  return { counts: new Array(DURATION_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
}

/**
 * The document: `server` as given, the workers' entries, `totals` (the
 * workers' counters summed; `stats`, when given, replaces that sum: a
 * primary's includes the workers that exited), the histogram.
 */
export function statusDocument(
  server: Omit<StatusDocument['server'], 'version' | 'parser'>,
  records: readonly Readonly<WorkerRecord>[],
  durations: Durations,
  queue: number | null,
  stats?: ScgiStats,
): StatusDocument {
  const now = Date.now();
  const workers = records.map((r) => workerStatus(r, now));
  const totals = { ...zeroStats(), inProgress: 0, openConnections: 0 };
  const replacements = zeroReplacements();
  for (const w of workers) {
    for (const k of Object.keys(w.stats) as (keyof ScgiStats)[]) totals[k] += w.stats[k];
    totals.inProgress += w.inProgress;
    totals.openConnections += w.openConnections;
    for (const k of REPLACEMENT_REASONS) replacements[k] += w.replacements[k];
  }
  if (stats !== undefined) Object.assign(totals, stats);
  return {
    server: { ...server, version: VERSION, parser: parserInfo.backend },
    totals,
    listenQueue: queue,
    replacements,
    workers,
    durations: { buckets: DURATION_BUCKETS, ...durations },
  };
}

/**
 * How to get a server's document, registered by whoever serves it: the
 * status endpoint (src/status/server.ts, src/status/primary.ts), the
 * prom-client bridge (src/status/prom-client.ts) for an in-process server.
 */
const sources = new WeakMap<object, () => StatusDocument>();

export function setDocumentSource(server: object, source: () => StatusDocument): void {
  sources.set(server, source);
}

/** The document source of `server`, or null for an object serve() did not make. */
export function documentOf(server: object): (() => StatusDocument) | null {
  return sources.get(server) ?? null;
}

/** What the in-process server shows the status endpoint (`InProcessServer`, src/server/serve.ts). */
export interface InProcessSource {
  readonly stats: Readonly<ScgiStats>;
  readonly openConnections: number;
  readonly connections: ReadonlySet<Lifecycle>;
  readonly transport: 'native' | 'net';
  readonly monitor: Monitor | null;
  address(): string | AddressInfo | null;
}

/** The document source of a server at parallelism 1: this process is its one worker, its record made from a heartbeat of its own. */
export function inProcessDocument(server: InProcessSource): () => StatusDocument {
  const startTime = Date.now();
  const beats = new HeartbeatMaker(server);
  return () => {
    const heartbeat = beats.make();
    const record: WorkerRecord = {
      pid: process.pid,
      state: heartbeat.inProgress > 0 ? 'busy' : 'idle',
      startTime,
      lastHeartbeat: heartbeat.time,
      heartbeat,
      replacements: zeroReplacements(),
    };
    const address = server.address();
    return statusDocument(
      { pid: process.pid, uptime: (Date.now() - startTime) / 1000, transport: server.transport, address: formatAddress(address), parallelism: 1 },
      [record],
      server.monitor?.durations() ?? zeroDurations(),
      listenQueue(address),
    );
  };
}
