#!/usr/bin/env node
/**
 * The `scgi` command: serve an app, send a request, run a small load test.
 * Exit codes: 0 success, 1 runtime failure (address in use, permission
 * denied, app failed to load, request failed), 2 usage error.
 */
import cluster from 'node:cluster';
import { readFileSync, realpathSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatAddress, resolveAddress } from './address.ts';
import { request, type ClientRequest } from './client.ts';
import type { Handler } from './scgi-client.ts';
import { ScgiError } from './errors.ts';
import { parserInfo } from './parser/index.ts';
import { serve, defaultAddress, type ServeOptions } from './server.ts';

const VERSION = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
})();

const HELP = `scgi ${VERSION}: an SCGI application server for Node.js

Usage:
  scgi serve APP [options]        serve APP's default export over SCGI
  scgi request [ADDRESS] [PATH]   send one request, print the response like curl -i
  scgi bench [ADDRESS] [PATH]     a small bounded load test
  scgi --help | --version

APP is a module whose default export is one of (detected):
  an SCGI handler      (headers, client) => ...
  a Node listener      (req, res) => ...  (an Express/Connect app is detected)
  a fetch handler      (request) => Response, or an object with fetch() (Hono)
  --type scgi|node|fetch overrides the detection.

serve options:
  --address ADDR        unix socket path, host:port, [v6]:port   (default ${defaultAddress()})
  --port N              TCP port when ADDR has none                (default 6500)
  --socket systemd|fd:N listen on a socket passed by systemd (LISTEN_FDS) or an
                        inherited descriptor, instead of --address
  --parallelism N|auto  worker processes                           (default 1)
  --http HOST:PORT      also start a development HTTP front that forwards to the
                        app over SCGI (NOT for production: use nginx)
  --type T              scgi, node or fetch                        (default: detected)
  --socket-mode MODE    octal mode of the unix socket               (default 660)
  --socket-group GROUP  group of the unix socket, e.g. www-data     (default: yours)
  --strict              reject repeated names and a missing SCGI=1  (default off)
  --max-body-size N     larger bodies get 413                       (default unlimited)
  --max-connections N   more get 503                                (default unlimited)
  --header-timeout MS   for the whole request header                (default 10000)
  --request-timeout MS  for the handler to finish                   (default 0: none)
  --shutdown-timeout MS wait for requests on SIGTERM                 (default 30000)

request options:
  -X, --method METHOD   (default GET, or POST with -d)
  -d, --data BODY       request body (@file reads a file)
  -H, --header 'N: v'   a request header, repeatable

bench options:
  -n, --requests N      total requests                               (default 10000)
  -c, --concurrency N   requests in flight                           (default 16)
  -t, --time SECONDS    stop after this long                         (default 10)

Exit codes: 0 ok, 1 failure (address in use, permission denied, ...), 2 usage.
`;

class UsageError extends Error {}

function int(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(v)}`);
  return Number(v);
}

export type AppKind = 'scgi' | 'node' | 'fetch';

/** Decide what a module's default export is. */
export function detectKind(app: unknown): AppKind {
  if (app !== null && typeof app === 'object' && typeof (app as { fetch?: unknown }).fetch === 'function') return 'fetch';
  if (typeof app !== 'function') throw new UsageError('the app module must export default a function or an object with fetch()');
  const f = app as { handle?: unknown; use?: unknown; length: number };
  if (typeof f.handle === 'function' && typeof f.use === 'function') return 'node'; // Express, Connect
  if (typeof (app as { fetch?: unknown }).fetch === 'function') return 'fetch';
  if (f.length === 1) return 'fetch';
  return 'scgi';
}

/** Turn any supported app into an SCGI handler. */
export async function toHandler(app: unknown, kind: AppKind): Promise<Handler> {
  if (kind === 'node') return (await import('./adapters/http.ts')).fromNodeListener(app as never);
  if (kind === 'fetch') return (await import('./adapters/fetch.ts')).fromFetch(app as never);
  return app as Handler;
}

async function cmdServe(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      address: { type: 'string' },
      port: { type: 'string' },
      socket: { type: 'string' },
      parallelism: { type: 'string' },
      http: { type: 'string' },
      type: { type: 'string' },
      'socket-mode': { type: 'string' },
      'socket-group': { type: 'string' },
      strict: { type: 'boolean' },
      'max-body-size': { type: 'string' },
      'max-connections': { type: 'string' },
      'header-timeout': { type: 'string' },
      'request-timeout': { type: 'string' },
      'shutdown-timeout': { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new UsageError('scgi serve takes one APP module');
  const file = resolvePath(positionals[0]!);
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `cannot load ${file}: ${(err as Error).message}`, { cause: err });
  }
  const app = mod.default;
  let kind: AppKind;
  if (values.type !== undefined) {
    if (!['scgi', 'node', 'fetch'].includes(values.type)) throw new UsageError('--type must be scgi, node or fetch');
    kind = values.type as AppKind;
  } else kind = detectKind(app);
  const handler = await toHandler(app, kind);

  const mode = values['socket-mode'];
  if (mode !== undefined && !/^0?[0-7]{3}$/.test(mode)) throw new UsageError('--socket-mode must be octal, like 660');
  const parallelism = values.parallelism === 'auto' ? true : int('parallelism', values.parallelism, 1);
  let http: { host: string; port: number } | undefined;
  if (values.http !== undefined) {
    const a = resolveAddress(values.http, 8080);
    if (a.kind !== 'tcp') throw new UsageError('--http takes host:port, e.g. 127.0.0.1:8080');
    http = { host: a.host, port: a.port };
  }
  let socket: ServeOptions['socket'];
  if (values.socket !== undefined) {
    if (values.socket === 'systemd') socket = 'systemd';
    else if (/^fd:\d+$/.test(values.socket)) socket = { fd: Number(values.socket.slice(3)) };
    else throw new UsageError("--socket takes 'systemd' or fd:N");
    if (values.address !== undefined || values.port !== undefined) throw new UsageError('--socket excludes --address and --port');
  }
  const options: ServeOptions = {
    socket,
    address: values.address,
    port: int('port', values.port),
    parallelism,
    socketMode: mode === undefined ? undefined : parseInt(mode, 8),
    socketGroup: values['socket-group'],
    strict: values.strict,
    maxBodySize: int('max-body-size', values['max-body-size']),
    maxConnections: int('max-connections', values['max-connections'], 1),
    headerTimeout: int('header-timeout', values['header-timeout']),
    requestTimeout: int('request-timeout', values['request-timeout']),
    shutdownTimeout: int('shutdown-timeout', values['shutdown-timeout']),
  };
  for (const k of Object.keys(options) as (keyof ServeOptions)[]) if (options[k] === undefined) delete options[k];
  const server = await serve(handler, options);
  if (!cluster.isPrimary) return; // a worker: the primary prints
  const where = server.address();
  const isUnix = typeof where === 'string';
  const pass = isUnix ? `unix:${where}` : formatAddress(where);
  const out = process.stdout;
  out.write(`scgi: serving ${file} (${kind} app, parser ${parserInfo.backend}) on ${formatAddress(where)}`);
  out.write(parallelism && parallelism !== 1 ? ` with ${(server as unknown as { workers: number[] }).workers.length} workers\n` : '\n');
  out.write(`\nnginx (inside a server { } block):\n\n    location / {\n        include scgi_params;\n        scgi_pass ${pass};\n    }\n\n`);
  if (isUnix) {
    out.write(
      `The socket is mode ${(options.socketMode ?? 0o660).toString(8)}${options.socketGroup ? `, group ${options.socketGroup}` : ''}: nginx's worker user must be able to write to it\n` +
        `(if nginx logs "Permission denied" and answers 502, use --socket-group www-data).\n`,
    );
  }
  if (http !== undefined) {
    const { startDevFront } = await import('./dev-front.ts');
    const front = await startDevFront({ app: isUnix ? (where as string) : formatAddress(where), listen: http });
    const a = front.address() as { address: string; port: number };
    out.write(`\nDevelopment HTTP front (not for production): http://${formatAddress(a)}/\n`);
    server.once('close', () => front.close());
    process.once('exit', () => front.close());
  } else {
    out.write(`Try it: scgi request ${isUnix ? where : formatAddress(where)} /\n`);
  }
}

function parseHeaderArgs(list: string[] | undefined): [string, string][] {
  return (list ?? []).map((h) => {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`-H takes 'Name: value', got ${JSON.stringify(h)}`);
    return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
  });
}

async function cmdRequest(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      method: { type: 'string', short: 'X' },
      data: { type: 'string', short: 'd' },
      header: { type: 'string', short: 'H', multiple: true },
    },
  });
  const [address = defaultAddress(), uri = '/'] = positionals;
  let body: string | Buffer | undefined = values.data;
  if (body !== undefined && body.startsWith('@')) body = readFileSync(body.slice(1));
  const req: ClientRequest = { uri, method: values.method, headers: parseHeaderArgs(values.header), body };
  const res = await request(address, req);
  const out = process.stdout;
  out.write(`Status: ${res.status} ${res.statusText}\r\n`);
  for (const [n, v] of res.rawHeaders) out.write(`${n}: ${v}\r\n`);
  out.write('\r\n');
  out.write(res.body);
}

async function cmdBench(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      requests: { type: 'string', short: 'n' },
      concurrency: { type: 'string', short: 'c' },
      time: { type: 'string', short: 't' },
    },
  });
  const [address = defaultAddress(), uri = '/'] = positionals;
  const total = int('requests', values.requests, 1) ?? 10_000;
  const concurrency = int('concurrency', values.concurrency, 1) ?? 16;
  const seconds = int('time', values.time, 1) ?? 10;
  const deadline = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let started = 0;
  let errors = 0;
  const statuses = new Map<number, number>();
  const t0 = performance.now();
  const worker = async () => {
    while (started < total && performance.now() < deadline) {
      started++;
      const s = performance.now();
      try {
        const res = await request(address, { uri, timeout: 10_000 });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        latencies.push(performance.now() - s);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]! : NaN);
  const out = process.stdout;
  out.write(`${latencies.length} responses, ${errors} errors in ${elapsed.toFixed(2)} s (concurrency ${concurrency})\n`);
  out.write(`requests/s: ${(latencies.length / elapsed).toFixed(0)}\n`);
  out.write(`latency ms: p50 ${pct(50).toFixed(2)}  p90 ${pct(90).toFixed(2)}  p99 ${pct(99).toFixed(2)}  max ${(latencies.at(-1) ?? NaN).toFixed(2)}\n`);
  out.write(`statuses: ${[...statuses].map(([s, n]) => `${s}×${n}`).join(' ')}\n`);
  if (errors > 0 || latencies.length === 0) process.exitCode = 1;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(HELP);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === '--version' || cmd === '-v') {
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(HELP);
      return 0;
    }
    if (cmd === 'serve') await cmdServe(rest);
    else if (cmd === 'request') await cmdRequest(rest);
    else if (cmd === 'bench') await cmdBench(rest);
    else throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    return (process.exitCode as number | undefined) ?? 0;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`scgi: ${(err as Error).message}\n(see scgi --help)\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
    let hint = '';
    if (e.code === 'ERR_SCGI_ADDRESS_IN_USE') hint = '\n(another server is listening there: stop it, or pick another --address)';
    if (e.code === 'EACCES' || e.cause?.code === 'EACCES') hint = '\n(permission denied: check the socket file and its directory, or run as the owner)';
    if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') hint = '\n(nothing listens there: is the app running, on this address?)';
    process.stderr.write(`scgi: ${e.message}${hint}\n`);
    return 1;
  }
}

// Run when executed (the bin), not when imported by tests.
function invokedPath(): string {
  try {
    return process.argv[1] ? pathToFileURL(realpathSync(process.argv[1])).href : '';
  } catch {
    return '';
  }
}
if (import.meta.url === invokedPath()) {
  const code = await main(process.argv.slice(2));
  // `serve` keeps running; the others exit with their code.
  if (process.argv[2] !== 'serve' || code !== 0) process.exit(code);
}
