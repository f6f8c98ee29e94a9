// Helpers for the status endpoint's tests: GET over a unix socket or TCP,
// and /metrics read by a real parser (Python's prometheus_client, installed
// by scripts/install-test-deps.sh).
import { execFileSync } from 'node:child_process';
import { request as httpRequest } from 'node:http';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET `path` from the status endpoint at `address` (a unix path or host:port). */
export function statusGet(address: string, path: string, headers: Record<string, string> = {}, timeout = 3000): Promise<HttpAnswer> {
  const where = address.startsWith('/')
    ? { socketPath: address }
    : { host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)) };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ ...where, path, headers, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${address}${path} within ${timeout} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface ParsedFamily {
  name: string;
  type: string;
  samples: ParsedSample[];
}

const PARSER = `
import json, math, sys
text = sys.stdin.read()
if sys.argv[1] == 'openmetrics':
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(text):
    out.append({'name': f.name, 'type': f.type, 'samples': [
        {'name': s.name, 'labels': s.labels, 'value': None if math.isnan(s.value) else s.value} for s in f.samples]})
print(json.dumps(out))
`;

/** Parse exposition text with prometheus_client (throws when the parser rejects it). */
export function parseMetrics(text: string, format: 'prometheus' | 'openmetrics'): Map<string, ParsedFamily> {
  const json = execFileSync('python3', ['-c', PARSER, format], { input: text, encoding: 'utf8' });
  return new Map((JSON.parse(json) as ParsedFamily[]).map((f) => [f.name, f]));
}

/** The value of the one sample named `sample` (with these labels) in `families`. */
export function sampleValue(families: Map<string, ParsedFamily>, family: string, sample: string, labels: Record<string, string> = {}): number | undefined {
  const f = families.get(family);
  const s = f?.samples.find((x) => x.name === sample && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}
