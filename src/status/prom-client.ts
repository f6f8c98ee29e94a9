/**
 * `registerMetrics(registry, server)`: the status endpoint's metrics
 * (src/status/metrics.ts) in a prom-client `Registry` of the application's
 * own, for apps that already expose `/metrics` with prom-client. prom-client
 * is an optional peer dependency: this module never imports it; it gives the
 * registry metric objects of the shape `Registry.registerMetric` takes
 * (`name`, `help`, `type`, `aggregator`, `get()`), read at each scrape from
 * the same status document as `GET /metrics`.
 *
 * In process the server starts its request monitor (src/status/monitor.ts)
 * if no option had (the histogram counts from then). A cluster primary gives
 * the cluster's numbers; its workers keep the duration histogram only when
 * an option made them a monitor (statusAddress, accessLog, slowRequestThreshold).
 */
import { ScgiError } from '../errors.ts';
import type { ScgiServer } from '../types.ts';
import { InProcessServer } from '../server/serve.ts';
import { documentOf, inProcessDocument, setDocumentSource, type StatusDocument } from './document.ts';
import { Monitor, reportSlowRequest } from './monitor.ts';
import { primaryDocument, type PrimarySource } from './primary.ts';
import { families } from './metrics.ts';

/** What `registerMetrics` needs of a prom-client `Registry` (v13 and later). */
export interface MetricsRegistry {
  registerMetric(metric: never): void;
}

interface PromValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * Register the server's metrics (`scgi_requests_total`, ...; docs/deployment.md,
 * "Monitoring") in `registry`. Throws `ERR_SCGI_INVALID_OPTION` for something
 * that is not a prom-client registry, or a server `serve()` did not make.
 */
export function registerMetrics(registry: MetricsRegistry, server: ScgiServer): void {
  if (registry === null || typeof registry !== 'object' || typeof (registry as { registerMetric?: unknown }).registerMetric !== 'function') {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'registerMetrics takes a prom-client Registry (for example prom-client.register)');
  }
  const source = sourceOf(server);
  if (source === null) throw new ScgiError('ERR_SCGI_INVALID_OPTION', 'registerMetrics takes a server made by serve()');
  // One document per scrape: every metric's get() runs in the same turn.
  let cached: StatusDocument | null = null;
  const doc = (): StatusDocument => {
    if (cached === null) {
      cached = source();
      setImmediate(() => (cached = null));
    }
    return cached;
  };
  for (const f of families(source())) {
    const name = f.type === 'counter' ? `${f.name}_total` : f.name;
    const metric = {
      name,
      help: f.help,
      type: f.type,
      aggregator: 'sum',
      get: async () => {
        const family = families(doc()).find((x) => x.name === f.name);
        const values: PromValue[] = [];
        if (family?.histogram !== undefined) {
          const h = family.histogram;
          let cumulative = 0;
          for (let i = 0; i < h.buckets.length; i++) {
            cumulative += h.counts[i] ?? 0;
            values.push({ value: cumulative, labels: { le: h.buckets[i]! }, metricName: `${f.name}_bucket` });
          }
          values.push({ value: h.count, labels: { le: '+Inf' }, metricName: `${f.name}_bucket` });
          values.push({ value: h.sum, labels: {}, metricName: `${f.name}_sum` });
          values.push({ value: h.count, labels: {}, metricName: `${f.name}_count` });
        } else if (family !== undefined) {
          for (const [labels, value] of family.samples) values.push({ value, labels: labels ?? {} });
        }
        return { name: metric.name, help: f.help, type: f.type, values, aggregator: 'sum' };
      },
      reset: () => {},
    };
    registry.registerMetric(metric as never);
  }
}

/** The server's document source; an in-process server without a monitor gets one now. */
function sourceOf(server: ScgiServer): (() => StatusDocument) | null {
  const known = documentOf(server);
  if (known !== null) return known;
  let source: () => StatusDocument;
  if (server instanceof InProcessServer) {
    server.monitor ??= new Monitor({ accessLog: false, slowRequestThreshold: 0, onSlowRequest: reportSlowRequest }, server);
    source = inProcessDocument(server);
  } else if (typeof (server as unknown as Partial<PrimarySource>).workerRecords === 'function' && server.workers !== undefined) {
    // A cluster primary started without statusAddress (its workers keep a histogram only with a monitoring option).
    source = primaryDocument(server as unknown as PrimarySource, server.workers.length);
  } else {
    return null;
  }
  setDocumentSource(server, source);
  return source;
}
