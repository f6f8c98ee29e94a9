/**
 * `GET /metrics`: the status document in the Prometheus text exposition
 * format 0.0.4, or OpenMetrics 1.0 when the scraper's Accept asks for
 * `application/openmetrics-text`. Names follow the Prometheus conventions
 * (`scgi_` prefix, base units, `_total` for counters); docs/deployment.md
 * ("Monitoring") says what each one means.
 */
import { REPLACEMENT_REASONS, type StatusDocument } from './document.ts';

export const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Does this Accept header ask for OpenMetrics? */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}

function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

type Sample = [labels: Record<string, string | number> | null, value: number];

/** One metric family in either format. */
export interface Family {
  /** The sample name of a gauge; a counter's without `_total`. */
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  samples: Sample[];
  /** Histograms: cumulative bucket counts by upper bound, then sum and count. */
  histogram?: { buckets: readonly number[]; counts: number[]; sum: number; count: number };
}

/** The families of a status document (shared with the prom-client bridge, src/status/prom-client.ts). */
export function families(doc: StatusDocument): Family[] {
  const t = doc.totals;
  const perPid = (f: (w: StatusDocument['workers'][number]) => number): Sample[] => doc.workers.map((w) => [{ pid: w.pid }, f(w)]);
  const states = new Map<string, number>(['starting', 'idle', 'busy', 'unresponsive', 'stopping'].map((s) => [s, 0]));
  for (const w of doc.workers) states.set(w.state, (states.get(w.state) ?? 0) + 1);
  const out: Family[] = [
    { name: 'scgi_requests', type: 'counter', help: 'Requests handed to the handler.', samples: [[null, t.requests]] },
    {
      name: 'scgi_request_duration_seconds',
      type: 'histogram',
      help: 'Time from dispatch to the handler to the last byte of the response handed to the socket.',
      samples: [],
      histogram: doc.durations,
    },
    { name: 'scgi_requests_in_progress', type: 'gauge', help: 'Requests being handled now.', samples: [[null, t.inProgress]] },
    { name: 'scgi_connections', type: 'gauge', help: 'Open SCGI connections.', samples: [[null, t.openConnections]] },
    { name: 'scgi_connections_accepted', type: 'counter', help: 'SCGI connections accepted.', samples: [[null, t.connections]] },
    {
      name: 'scgi_rejected',
      type: 'counter',
      help: 'Connections closed for bad input or over a limit, without a handler call.',
      samples: [[null, t.rejected]],
    },
    {
      name: 'scgi_timeouts',
      type: 'counter',
      help: 'Connections closed by headerTimeout, bodyTimeout/minBodyRate or requestTimeout.',
      samples: [[null, t.timeouts]],
    },
    { name: 'scgi_errors', type: 'counter', help: 'Handler errors caught.', samples: [[null, t.errors]] },
    { name: 'scgi_overloaded', type: 'counter', help: 'Connections answered 503 over maxConnections.', samples: [[null, t.overloaded]] },
    { name: 'scgi_fd_exhausted', type: 'counter', help: 'Connections answered 503 near the file descriptor limit.', samples: [[null, t.fdExhausted]] },
    {
      name: 'scgi_worker_replacements',
      type: 'counter',
      help: 'Workers replaced, by reason.',
      samples: REPLACEMENT_REASONS.map((r): Sample => [{ reason: r }, doc.replacements[r]]),
    },
    { name: 'scgi_workers', type: 'gauge', help: 'Worker processes by state.', samples: [...states].map(([s, n]): Sample => [{ state: s }, n]) },
    { name: 'scgi_worker_resident_memory_bytes', type: 'gauge', help: 'Resident set size of each worker.', samples: perPid((w) => w.rss) },
    { name: 'scgi_worker_heap_used_bytes', type: 'gauge', help: 'V8 heap used by each worker.', samples: perPid((w) => w.heapUsed) },
    { name: 'scgi_worker_event_loop_utilization', type: 'gauge', help: 'Event-loop utilisation of each worker (0..1).', samples: perPid((w) => w.elu) },
    { name: 'scgi_worker_requests_in_progress', type: 'gauge', help: 'Requests in progress in each worker.', samples: perPid((w) => w.inProgress) },
    {
      name: 'scgi_worker_oldest_request_age_seconds',
      type: 'gauge',
      help: 'Age of the oldest request in progress in each worker (0 when none).',
      samples: perPid((w) => (w.oldestRequest?.ageMs ?? 0) / 1000),
    },
  ];
  if (doc.listenQueue !== null) {
    out.push({ name: 'scgi_listen_queue', type: 'gauge', help: 'Connections waiting in the SCGI socket accept queue.', samples: [[null, doc.listenQueue]] });
  }
  return out;
}

function labels(l: Record<string, string | number> | null): string {
  if (l === null) return '';
  return `{${Object.entries(l)
    .map(([k, v]) => `${k}="${labelValue(String(v))}"`)
    .join(',')}}`;
}

/** The exposition text: Prometheus 0.0.4, or OpenMetrics 1.0 (`open`). */
export function renderMetrics(doc: StatusDocument, open: boolean): string {
  let s = '';
  for (const f of families(doc)) {
    const sampleName = f.type === 'counter' ? `${f.name}_total` : f.name;
    const family = f.type === 'counter' && !open ? sampleName : f.name;
    s += `# HELP ${family} ${f.help}\n# TYPE ${family} ${f.type}\n`;
    if (f.histogram !== undefined) {
      const h = f.histogram;
      let cumulative = 0;
      for (let i = 0; i < h.buckets.length; i++) {
        cumulative += h.counts[i] ?? 0;
        s += `${f.name}_bucket{le="${num(h.buckets[i]!)}"} ${cumulative}\n`;
      }
      s += `${f.name}_bucket{le="+Inf"} ${h.count}\n${f.name}_sum ${num(h.sum)}\n${f.name}_count ${h.count}\n`;
      continue;
    }
    for (const [l, v] of f.samples) s += `${sampleName}${labels(l)} ${num(v)}\n`;
  }
  if (open) s += '# EOF\n';
  return s;
}
