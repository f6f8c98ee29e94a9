/**
 * The per-process request monitor: what the status endpoint, the access log
 * and the slow-request report need to know about each request. It exists
 * only when one of `statusAddress`, `accessLog`, `slowRequestThreshold` is
 * set (`monitorOptions`); otherwise the server's `monitor` is null and a
 * request costs one branch (`Lifecycle.startRequest`, `InProcessServer.released`).
 *
 * Per request, from dispatch (the header parsed, `begin`) to the response's
 * last byte handed to the transport (`end`), or to the connection's end when
 * the response never finished (a reset, the front gone): the method, URI and
 * start are kept while it is in progress (the status endpoint's `requests`,
 * the oldest's age; the slow-request sweep), the response's status and bytes
 * are read off what is written (`ObservedTransport`, which sits between the
 * lifecycle and its transport), the duration goes into a histogram of fixed
 * bucket counters, and one access log line is queued.
 *
 * Access log lines (`accessLog: true`) are Common Log Format plus three
 * fields, written to stdout in batches (one write per loop turn, or per 64 KiB):
 *
 *   REMOTE_ADDR - - [07/Dec/2026:14:39:24 +0000] "GET /path HTTP/1.1" 200 1234 0.512 4242
 *
 * (remote address from REMOTE_ADDR, `-` when unknown; status, 0 when the
 * connection ended before any response byte; response bytes, head included;
 * duration in ms; pid). docs/deployment.md ("Monitoring") documents it.
 */
import type { EventEmitter } from 'node:events';
import { writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ScgiHeaders } from '../protocol/scgi-headers.ts';
import type { Transport, TransportEvents, TransportSocket } from '../transport/types.ts';

/** One access log entry (what a function `accessLog` receives). */
export interface AccessLogEntry {
  /** When the request was dispatched to the handler. */
  time: Date;
  /** REMOTE_ADDR (the browser's, as the front saw it), else the socket's peer, else `'-'`. */
  remoteAddress: string;
  method: string;
  uri: string;
  /** The response's status; 0 when the connection ended before any response byte. */
  status: number;
  /** Response bytes written (the CGI head included). */
  bytes: number;
  /** From dispatch to the response's last byte (or to the connection's end). */
  durationMs: number;
  /** The worker process. */
  pid: number;
  /** The connection ended before the response did (a reset, the front gone). */
  aborted: boolean;
}

/** What `onSlowRequest` receives: once per request, when it has been in progress `slowRequestThreshold` ms. */
export interface SlowRequest {
  method: string;
  uri: string;
  elapsedMs: number;
  pid: number;
}

export interface MonitorOptions {
  accessLog: false | true | ((entry: AccessLogEntry) => void);
  slowRequestThreshold: number;
  onSlowRequest: (req: SlowRequest) => void;
}

/** Upper bounds (seconds) of the request duration histogram's buckets; `+Inf` follows. */
export const DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** A request in progress. */
export interface RequestRecord {
  readonly method: string;
  readonly uri: string;
  readonly headers: ScgiHeaders;
  readonly socket: TransportSocket;
  /** `performance.now()` at dispatch. */
  readonly start: number;
  /** `Date.now()` at dispatch. */
  readonly wallStart: number;
  status: number;
  bytes: number;
  slowReported: boolean;
}

/** The request duration histogram: counts per bucket of `DURATION_BUCKETS` (not cumulative), the `+Inf` one last; sum in seconds. */
export interface Durations {
  counts: number[];
  sum: number;
  count: number;
}

/** Queued access log text is written once it reaches this size, or at the end of the loop turn. */
const FLUSH_AT = 64 * 1024;

const STATUS_LINE = /^status:[ \t]*(\d{3})/i;
const LOCATION = /(^|\n)location:/i;

/** The status a CGI response head says: `Status: NNN`, else 302 with a `Location`, else 200. */
function statusOf(first: string): number {
  const m = STATUS_LINE.exec(first);
  if (m !== null) return Number(m[1]);
  const end = first.indexOf('\r\n\r\n');
  return LOCATION.test(end === -1 ? first : first.slice(0, end)) ? 302 : 200;
}

function byteLength(data: string | Uint8Array, encoding: BufferEncoding | undefined): number {
  return typeof data === 'string' ? Buffer.byteLength(data, encoding ?? 'utf8') : data.byteLength;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** The last second formatted, and which second it was (a busy log formats each second once). */
let clfSecond = -1;
let clfText = '';

/** `[07/Dec/2026:14:39:24 +0000]`'s inside (UTC). */
export function clfTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second === clfSecond) return clfText;
  const d = new Date(second * 1000);
  clfSecond = second;
  clfText = `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
  return clfText;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
const UNSAFE = /["\\\x00-\x1f\x7f-\xff]/g;

/** A value inside a quoted log field: `"`, `\`, controls and bytes above 0x7e as `\xHH` (as nginx escapes). */
function escapeField(s: string): string {
  UNSAFE.lastIndex = 0;
  if (!UNSAFE.test(s)) return s;
  return s.replace(UNSAFE, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** One access log line (no newline). */
export function formatAccessLine(e: AccessLogEntry, protocol: string): string {
  return (
    `${e.remoteAddress === '' ? '-' : e.remoteAddress} - - [${clfTime(e.time.getTime())}] ` +
    `"${escapeField(e.method)} ${escapeField(e.uri)} ${escapeField(protocol)}" ${e.status} ${e.bytes} ${e.durationMs.toFixed(3)} ${e.pid}`
  );
}

/**
 * The lifecycle's transport while a request is observed: forwards every
 * call, reading the status and counting the bytes of what is written; the
 * response's `end` (or the connection's reset or destroy) finishes the record.
 */
class ObservedTransport implements Transport {
  readonly #inner: Transport;
  readonly #monitor: Monitor;
  readonly #conn: object;
  readonly #rec: RequestRecord;

  constructor(inner: Transport, monitor: Monitor, conn: object, rec: RequestRecord) {
    this.#inner = inner;
    this.#monitor = monitor;
    this.#conn = conn;
    this.#rec = rec;
  }

  get socket(): TransportSocket {
    return this.#inner.socket;
  }

  get writable(): boolean {
    return this.#inner.writable;
  }

  attach(events: TransportEvents): void {
    this.#inner.attach(events);
  }

  pause(): void {
    this.#inner.pause();
  }

  resume(): void {
    this.#inner.resume();
  }

  cork(): void {
    this.#inner.cork();
  }

  uncork(): boolean {
    return this.#inner.uncork();
  }

  #count(data: string | Uint8Array, encoding: BufferEncoding | undefined): void {
    const rec = this.#rec;
    if (rec.bytes === 0 && rec.status === 0) {
      const first =
        typeof data === 'string' ? data.slice(0, 1024) : Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, 1024)).toString('latin1');
      if (first.length > 0) rec.status = statusOf(first);
    }
    rec.bytes += byteLength(data, encoding);
  }

  write(data: string | Uint8Array, encoding?: BufferEncoding): boolean {
    if (this.#inner.writable) this.#count(data, encoding);
    return this.#inner.write(data, encoding);
  }

  end(data?: string | Uint8Array | null, encoding?: BufferEncoding, close?: boolean): boolean {
    if (data != null && this.#inner.writable) this.#count(data, encoding);
    const written = this.#inner.end(data, encoding, close);
    this.#monitor.released(this.#conn, false);
    return written;
  }

  reset(): void {
    this.#monitor.released(this.#conn, true);
    this.#inner.reset();
  }

  destroy(): void {
    this.#monitor.released(this.#conn, true);
    this.#inner.destroy();
  }
}

export class Monitor {
  readonly pid = process.pid;
  /** Requests in progress, by connection (insertion order: oldest first). */
  readonly inProgress = new Map<object, RequestRecord>();
  /** Duration bucket counts (not cumulative; the last is `+Inf`), their sum (s) and count. */
  readonly counts: number[] = new Array(DURATION_BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;
  readonly #log: MonitorOptions['accessLog'];
  readonly #slowAfter: number;
  readonly #onSlow: MonitorOptions['onSlowRequest'];
  #slowTimer: NodeJS.Timeout | null = null;
  #queued = '';
  #flushScheduled = false;
  #logFailed = false;
  /** Writes what is queued when the process exits before the end of the turn (accessLog true). */
  readonly #onExit = (): void => this.flush();

  /** `owner`: the server; its `'close'` stops the sweep and writes what is queued. */
  constructor(o: MonitorOptions, owner?: EventEmitter) {
    this.#log = o.accessLog;
    this.#slowAfter = o.slowRequestThreshold;
    this.#onSlow = o.onSlowRequest;
    if (o.accessLog === true) process.once('exit', this.#onExit);
    owner?.once('close', () => this.close());
  }

  /**
   * A request is dispatched on connection `conn`: start its record, and
   * return the transport the lifecycle uses from now on.
   */
  begin(conn: object, headers: ScgiHeaders, transport: Transport): Transport {
    const rec: RequestRecord = {
      method: headers.get('REQUEST_METHOD') ?? '-',
      uri: headers.get('REQUEST_URI') ?? '-',
      headers,
      socket: transport.socket,
      start: performance.now(),
      wallStart: Date.now(),
      status: 0,
      bytes: 0,
      slowReported: false,
    };
    this.inProgress.set(conn, rec);
    if (this.#slowAfter > 0 && this.#slowTimer === null) this.#startSlowSweep();
    return new ObservedTransport(transport, this, conn, rec);
  }

  /**
   * The request on `conn` is over: its response's last byte went to the
   * transport (`aborted` false), or the connection was cut or is gone
   * (`aborted`: the server's `released`). Once per request; later calls do nothing.
   */
  released(conn: object, aborted = true): void {
    const rec = this.inProgress.get(conn);
    if (rec !== undefined) this.#end(conn, rec, aborted);
  }

  #end(conn: object, rec: RequestRecord, aborted: boolean): void {
    this.inProgress.delete(conn);
    const ms = performance.now() - rec.start;
    const s = ms / 1000;
    let i = 0;
    while (i < DURATION_BUCKETS.length && s > DURATION_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += s;
    this.count++;
    const log = this.#log;
    if (log === false) return;
    const entry: AccessLogEntry = {
      time: new Date(rec.wallStart),
      remoteAddress: rec.headers.get('REMOTE_ADDR') || rec.socket.remoteAddress || '-',
      method: rec.method,
      uri: rec.uri,
      status: rec.status,
      bytes: rec.bytes,
      durationMs: ms,
      pid: this.pid,
      aborted,
    };
    if (log === true) this.#queue(formatAccessLine(entry, rec.headers.get('SERVER_PROTOCOL') ?? 'HTTP/1.1'));
    else {
      try {
        log(entry);
      } catch (err) {
        if (!this.#logFailed) {
          this.#logFailed = true;
          console.error(`scgi: the accessLog function threw (reported once): ${(err as Error).message}`);
        }
      }
    }
  }

  #queue(line: string): void {
    this.#queued += `${line}\n`;
    if (this.#queued.length >= FLUSH_AT) this.flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Write the queued access log lines now. */
  flush(): void {
    this.#flushScheduled = false;
    const text = this.#queued;
    if (text === '') return;
    this.#queued = '';
    if (process.stdout.writable) process.stdout.write(text);
    else writeSync(1, text);
  }

  #startSlowSweep(): void {
    const every = Math.max(10, Math.min(1000, Math.floor(this.#slowAfter / 4)));
    this.#slowTimer = setInterval(() => this.#sweepSlow(), every);
    this.#slowTimer.unref();
  }

  #sweepSlow(): void {
    if (this.inProgress.size === 0) {
      clearInterval(this.#slowTimer!);
      this.#slowTimer = null;
      return;
    }
    const now = performance.now();
    for (const rec of this.inProgress.values()) {
      const elapsed = now - rec.start;
      // Oldest first: once one is younger than the threshold, so are the rest.
      if (elapsed < this.#slowAfter) break;
      if (rec.slowReported) continue;
      rec.slowReported = true;
      try {
        this.#onSlow({ method: rec.method, uri: rec.uri, elapsedMs: Math.round(elapsed), pid: this.pid });
      } catch {
        // a hook that throws must not take the server down
      }
    }
  }

  /** Stop the sweep and write what is queued (the server closed). */
  close(): void {
    if (this.#slowTimer !== null) clearInterval(this.#slowTimer);
    this.#slowTimer = null;
    process.off('exit', this.#onExit);
    this.flush();
  }

  /** The duration histogram so far (a copy). */
  durations(): Durations {
    return { counts: [...this.counts], sum: this.sum, count: this.count };
  }
}

/** The default `onSlowRequest`: one line on stderr. */
export function reportSlowRequest(r: SlowRequest): void {
  console.error(`scgi: slow request: ${r.method} ${r.uri} still in progress after ${r.elapsedMs} ms (pid ${r.pid})`);
}
