/**
 * The worker heartbeat and the primary's record of each worker.
 *
 * Every cluster worker sends its primary a `Heartbeat` once per
 * `HEARTBEAT_INTERVAL` ms, unconditionally, from an unref'd timer (nothing
 * per request): its counters, open connections, the requests in progress
 * (method, URI, start; oldest first, at most `MAX_REPORTED_REQUESTS`), RSS,
 * heap and event-loop utilisation. The requests in progress are read from the
 * server's own set of connection lifecycles (`InProcessServer#connections`,
 * src/server/serve.ts): a lifecycle in `Phase.BODY` is a request in progress, and
 * `Lifecycle#requestStart` is when its handler was called.
 *
 * The primary keeps one `WorkerRecord` per live worker (`WorkerRecords`),
 * reachable through `primary.workerRecords()` (src/server/cluster.ts): its state,
 * when it started, when its last heartbeat came and that heartbeat, and how
 * many times the workers it took over from were replaced, by reason. It is
 * what the supervision (src/server/cluster.ts: `workerTimeout`, recycling) and the
 * status endpoint read.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { Phase, type Lifecycle } from '../connection/lifecycle.ts';
import type { Durations } from '../status/monitor.ts';
import type { ScgiStats } from '../types.ts';

/** ms between two heartbeats of a worker. */
export const HEARTBEAT_INTERVAL = 1000;
/** Most requests in progress one heartbeat lists (the oldest). */
export const MAX_REPORTED_REQUESTS = 16;

/** A request in progress, as a heartbeat reports it. */
export interface InProgressRequest {
  /** REQUEST_METHOD ('?' if absent). */
  method: string;
  /** REQUEST_URI ('?' if absent). */
  uri: string;
  /** When its handler was called (ms since the epoch). */
  start: number;
}

/** worker → primary, every HEARTBEAT_INTERVAL ms and once on the way out. */
export interface Heartbeat {
  scgi: 'heartbeat';
  /** The worker's counters since it started. */
  stats: ScgiStats;
  /** Open connections. */
  open: number;
  /** Requests in progress (handler called, response not finished). */
  inProgress: number;
  /** The oldest requests in progress, oldest first, at most MAX_REPORTED_REQUESTS. */
  requests: InProgressRequest[];
  /** Resident set size, bytes. */
  rss: number;
  /** V8 heap in use, bytes. */
  heapUsed: number;
  /** Event-loop utilisation since the previous heartbeat, 0..1. */
  elu: number;
  /** When this heartbeat was made (ms since the epoch). */
  time: number;
  /** The request duration histogram, when the worker has a request monitor (src/status/monitor.ts). */
  durations?: Durations;
}

/** Why a worker was replaced (or stopped), as `'workerExit'` says. */
export type ExitReason = 'crash' | 'timeout' | 'recycle' | 'reload' | 'shutdown';
export const EXIT_REASONS: readonly ExitReason[] = ['crash', 'timeout', 'recycle', 'reload', 'shutdown'];

export type WorkerState = 'starting' | 'idle' | 'busy' | 'unresponsive' | 'stopping';

/** What the primary knows about one live worker. Read-only for everyone but `WorkerRecords`. */
export interface WorkerRecord {
  pid: number;
  /**
   * `starting` until it listens; then `idle` or `busy` (a request in
   * progress at its last heartbeat); `unresponsive` once a heartbeat is more
   * than two intervals late; `stopping` once it is being retired or killed.
   */
  state: WorkerState;
  /** When it was forked (ms since the epoch). */
  startTime: number;
  /** When its last heartbeat arrived (ms since the epoch), or null before the first. */
  lastHeartbeat: number | null;
  /** Its last heartbeat, or null before the first. */
  heartbeat: Heartbeat | null;
  /**
   * How many workers were replaced, by reason, in the line of workers this
   * one continues (a replacement inherits its predecessor's counts plus one).
   */
  replacements: Record<ExitReason, number>;
}

/** Something whose connections a heartbeat reports (the worker's in-process server). */
export interface HeartbeatSource {
  readonly stats: Readonly<ScgiStats>;
  readonly openConnections: number;
  readonly connections: ReadonlySet<Lifecycle>;
  /** The request monitor, if the options asked for one (its histogram goes into the heartbeat). */
  readonly monitor?: { durations(): Durations } | null;
}

/** The requests in progress of `connections`: how many, and the oldest MAX_REPORTED_REQUESTS of them, oldest first. */
export function requestsInProgress(connections: ReadonlySet<Lifecycle>): { inProgress: number; requests: InProgressRequest[] } {
  const busy: Lifecycle[] = [];
  for (const conn of connections) if (conn.phase === Phase.BODY) busy.push(conn);
  // Connections carry one request each, so accept order is nearly start order: the sort is short work.
  busy.sort((a, b) => a.requestStart - b.requestStart);
  const requests: InProgressRequest[] = [];
  for (let i = 0; i < busy.length && i < MAX_REPORTED_REQUESTS; i++) {
    const conn = busy[i]!;
    const headers = conn.client?.headers;
    requests.push({
      method: headers?.get('REQUEST_METHOD') ?? '?',
      uri: headers?.get('REQUEST_URI') ?? '?',
      start: conn.requestStart,
    });
  }
  return { inProgress: busy.length, requests };
}

/** Makes the heartbeats of one process (keeps the event-loop utilisation mark between them). */
export class HeartbeatMaker {
  readonly #source: HeartbeatSource;
  #elu: EventLoopUtilization = performance.eventLoopUtilization();

  constructor(source: HeartbeatSource) {
    this.#source = source;
  }

  make(): Heartbeat {
    const s = this.#source;
    const now = performance.eventLoopUtilization();
    const elu = performance.eventLoopUtilization(now, this.#elu).utilization;
    this.#elu = now;
    const mem = process.memoryUsage();
    return {
      scgi: 'heartbeat',
      stats: { ...s.stats },
      open: s.openConnections,
      ...requestsInProgress(s.connections),
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      elu: Number.isFinite(elu) ? elu : 0,
      time: Date.now(),
      ...(s.monitor ? { durations: s.monitor.durations() } : {}),
    };
  }
}

export function isHeartbeat(msg: unknown): msg is Heartbeat {
  return msg !== null && typeof msg === 'object' && (msg as { scgi?: unknown }).scgi === 'heartbeat';
}

function noReplacements(): Record<ExitReason, number> {
  return { crash: 0, timeout: 0, recycle: 0, reload: 0, shutdown: 0 };
}

/** A heartbeat this many intervals late makes a worker `unresponsive`. */
const LATE_AFTER = 2;

/** The primary's records, one per live worker, keyed by an opaque handle (its `cluster.Worker`). */
export class WorkerRecords<K> {
  readonly #records = new Map<K, WorkerRecord>();

  /**
   * A worker was forked. `after`: it replaces a worker (whose record's
   * `replacements` it continues, plus one for `reason`).
   */
  add(key: K, pid: number, after?: { replacements: Readonly<Record<ExitReason, number>>; reason: ExitReason }): WorkerRecord {
    const replacements = after === undefined ? noReplacements() : { ...after.replacements };
    if (after !== undefined) replacements[after.reason]++;
    const record: WorkerRecord = { pid, state: 'starting', startTime: Date.now(), lastHeartbeat: null, heartbeat: null, replacements };
    this.#records.set(key, record);
    return record;
  }

  get(key: K): WorkerRecord | undefined {
    return this.#records.get(key);
  }

  /** It listens: `idle` until its first heartbeat says otherwise. */
  listening(key: K): void {
    const r = this.#records.get(key);
    if (r === undefined || r.state !== 'starting') return;
    r.state = 'idle';
    r.lastHeartbeat ??= Date.now();
  }

  beat(key: K, heartbeat: Heartbeat): void {
    const r = this.#records.get(key);
    if (r === undefined) return;
    r.lastHeartbeat = Date.now();
    r.heartbeat = heartbeat;
    if (r.state !== 'stopping' && r.state !== 'starting') r.state = heartbeat.inProgress > 0 ? 'busy' : 'idle';
  }

  stopping(key: K): void {
    const r = this.#records.get(key);
    if (r !== undefined) r.state = 'stopping';
  }

  /** The worker is gone: its record is removed and returned. */
  remove(key: K): WorkerRecord | undefined {
    const r = this.#records.get(key);
    this.#records.delete(key);
    return r;
  }

  /** Mark workers whose heartbeat is more than LATE_AFTER intervals late `unresponsive`; returns the records with how late each is (ms). */
  check(now: number): { key: K; record: WorkerRecord; silentFor: number }[] {
    const out: { key: K; record: WorkerRecord; silentFor: number }[] = [];
    for (const [key, r] of this.#records) {
      if (r.lastHeartbeat === null || r.state === 'starting' || r.state === 'stopping') continue;
      const silentFor = now - r.lastHeartbeat;
      if (silentFor > LATE_AFTER * HEARTBEAT_INTERVAL) r.state = 'unresponsive';
      out.push({ key, record: r, silentFor });
    }
    return out;
  }

  /** Every live worker's record, in fork order. */
  all(): WorkerRecord[] {
    return [...this.#records.values()];
  }
}
