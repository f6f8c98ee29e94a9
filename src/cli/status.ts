/**
 * `scgi status ADDRESS [--json]`: ask a server's status endpoint
 * (`statusAddress`, `scgi serve --status`) for its document and print the
 * workers as a table (as `pm2 status` or `uwsgitop` do), or the raw JSON.
 * Nothing answering is a failure (exit 1) with a message saying so.
 */
import { request } from 'node:http';
import { ScgiError } from '../errors.ts';
import type { StatusDocument } from '../status/document.ts';
import { statusListenOptions } from '../status/server.ts';

/** GET /status from `address` (a unix path or host:port) within `timeout` ms. */
export function fetchStatus(address: string, timeout = 3000): Promise<string> {
  const where = statusListenOptions(address);
  const target = where.kind === 'unix' ? { socketPath: where.path } : { host: where.listen.host, port: where.listen.port };
  return new Promise((resolve, reject) => {
    const nothing = (why: string) =>
      new ScgiError('ERR_SCGI_STATUS_UNAVAILABLE', `no status from ${address}: ${why} (is the server running with statusAddress / --status ${address}?)`);
    const req = request({ ...target, path: '/status', timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(nothing(`HTTP ${res.statusCode}`));
        else resolve(body);
      });
      res.on('error', (err) => reject(nothing(err.message)));
    });
    req.on('timeout', () => req.destroy(nothing(`no answer within ${timeout} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof ScgiError ? err : nothing(err.code ?? err.message)));
    req.end();
  });
}

function bytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${(n / 1024 ** 3).toFixed(1)} GB`;
  if (n >= 1024 * 1024) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024).toFixed(0)} KB`;
}

function duration(s: number): string {
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** The document as text: a summary, then one row per worker. */
export function formatStatus(d: StatusDocument): string {
  const s = d.server;
  const t = d.totals;
  const r = d.replacements;
  const replaced = Object.entries(r)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  let out =
    `scgi ${s.version} on ${s.address}: pid ${s.pid}, up ${duration(s.uptime)}, transport ${s.transport}, parser ${s.parser}, ` +
    `parallelism ${s.parallelism}\n` +
    `requests ${t.requests}, in progress ${t.inProgress}, connections ${t.openConnections} open (${t.connections} accepted), ` +
    `rejected ${t.rejected}, timeouts ${t.timeouts}, errors ${t.errors}, overloaded ${t.overloaded}, ` +
    `listen queue ${d.listenQueue ?? 'unknown'}${replaced === '' ? '' : `, replaced: ${replaced}`}\n\n`;
  const head = ['pid', 'state', 'requests', 'in progress', 'rss', 'heap', 'elu', 'heartbeat', 'uptime', 'oldest request'];
  const now = Date.now();
  const rows = d.workers.map((w) => [
    String(w.pid),
    w.state,
    String(w.requests),
    String(w.inProgress),
    bytes(w.rss),
    bytes(w.heapUsed),
    `${Math.round(w.elu * 100)}%`,
    w.lastHeartbeatAgeMs === null ? '-' : `${(w.lastHeartbeatAgeMs / 1000).toFixed(1)}s ago`,
    duration(Math.max(0, (now - Date.parse(w.startTime)) / 1000)),
    w.oldestRequest === null ? '-' : `${w.oldestRequest.method} ${w.oldestRequest.uri} (${duration(w.oldestRequest.ageMs / 1000)})`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  out += `${line(head)}\n${rows.map(line).join('\n')}\n`;
  return out;
}

/** `scgi status ADDRESS [--json]`. */
export async function statusCommand(address: string, json: boolean): Promise<string> {
  const body = await fetchStatus(address);
  if (json) return body.endsWith('\n') ? body : `${body}\n`;
  return formatStatus(JSON.parse(body) as StatusDocument);
}
