#!/usr/bin/env node
/**
 * The `scgi` command: serve an app, send a request, run a small load test.
 * Exit codes: 0 success, 1 runtime failure (address in use, permission
 * denied, app failed to load, request failed), 2 usage error (a bad option
 * or value, an app whose kind cannot be told: ERR_SCGI_INVALID_APP).
 */
import cluster from 'node:cluster';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { formatAddress, resolveAddress } from '../address.ts';
import { request, requestStream, type ClientRequest } from '../client/request.ts';
import type { Handler } from '../connection/scgi-client.ts';
import type { NodeListener } from '../adapters/http.ts';
import { ScgiError } from '../errors.ts';
import { parserInfo } from '../parser/index.ts';
import { isIntegerIn, MAX_TIMEOUT, MIN_WORKER_TIMEOUT } from '../options.ts';
import { serve, defaultAddress, type ServeOptions } from '../server/serve.ts';

const VERSION = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
})();

const HELP = `scgi ${VERSION}: an SCGI application server for Node.js

Usage:
  scgi serve APP [options]        serve APP's default export over SCGI
  scgi request [ADDRESS] [PATH]   send one request, print the response like curl -i
  scgi bench [ADDRESS] [PATH]     a small bounded load test
  scgi status ADDRESS [--json]    a server's workers, from its --status endpoint
  scgi --help | --version

APP is a module whose default export is one of (detected by what it is):
  an Express/Connect app, a Koa app, a Fastify app   served through scgi/http
  an object with fetch() (Hono, itty-router...)      served through scgi/fetch
  a handler made by fromFetch()/fromNodeListener()   served as it is
A plain function cannot be told apart: (headers, client), (req, res) and
(request, env) look the same. Pass --type raw|node|fetch, or export
\`const scgiType = 'raw' | 'node' | 'fetch'\` from the module.

serve options:
  --address ADDR        unix socket path, host:port, [v6]:port   (default ${defaultAddress()})
  --port N              TCP port when ADDR has none                (default 6500)
  --socket systemd|fd:N listen on a socket passed by systemd (LISTEN_FDS) or an
                        inherited descriptor, instead of --address
  --parallelism N|auto  worker processes                           (default 1)
  --http HOST:PORT      also start a development HTTP front that forwards to the
                        app over SCGI (NOT for production: use nginx)
  --type T              raw (an SCGI handler), node (a (req, res) listener)
                        or fetch (a fetch handler)                (default: detected)
  --socket-mode MODE    octal mode of the unix socket               (default 660)
  --socket-group GROUP  group of the unix socket, e.g. www-data     (default: yours)
  --strict              reject repeated names and a missing SCGI=1  (default off)
  --max-body-size N     larger bodies get 413                       (default unlimited)
  --max-connections N   more get 503                                (default unlimited)
  --header-timeout MS   for the whole request header                (default 10000)
  --request-timeout MS  for the handler to finish                   (default 0: none)
  --shutdown-timeout MS wait for requests on SIGTERM                 (default 30000)
  --status ADDRESS      serve GET /status (JSON) and /metrics (Prometheus) on this
                        unix socket (mode 600) or host:port (a bare port: 127.0.0.1)
  --access-log          one line per request on stdout (Common Log Format,
                        then duration in ms and pid)                (default off)
  --slow-request-threshold MS  report requests in progress longer than this
                        on stderr                                   (default 0: off)
  --worker-timeout MS   kill and replace a worker whose event loop has not
                        answered for this long, after reporting its stack
                        (at parallelism 1 the process reports and exits),
                        and a worker that has not listened within it
                        (at least 10 s)                             (default 30000; 0: off)
  --max-requests N      replace a worker after N requests, as SIGHUP does
                        (needs --parallelism 2 or more)             (default 0: never)
  --max-requests-jitter N
                        add a random 0..N to --max-requests in each worker
                                                                    (default 0)
  --max-rss SIZE        replace a worker whose RSS exceeds SIZE (bytes, or
                        512M, 2G; needs --parallelism 2 or more)    (default 0: never)

request options:
  -X, --method METHOD   (default GET, or POST with -d)
  -d, --data BODY       request body (@file reads a file)
  -H, --header 'N: v'   a request header, repeatable

bench options:
  -n, --requests N      total requests                               (default 10000)
  -c, --concurrency N   requests in flight                           (default 16)
  -t, --time SECONDS    stop after this long                         (default 10)
  -X, -d, -H            method, body (@file), headers, as for request
  A progress line is shown on a terminal; errors are counted by reason.

Exit codes: 0 ok, 1 failure (address in use, permission denied, ...), 2 usage.
`;

class UsageError extends Error {}

/** A whole number option from `min` to `max`; the message quotes what was given. */
function int(name: string, v: string | undefined, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
  if (!/^\d+$/.test(v) || v.length > 16 || !isIntegerIn(Number(v), min, max)) {
    throw new UsageError(`--${name} must be a whole number ${range}, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/**
 * parseArgs takes `--header-timeout -5` for an option followed by another
 * option ("argument is ambiguous"): say what is wrong with the number instead.
 */
function rejectNegativeNumbers(args: string[], numeric: string[]): void {
  for (let i = 0; i < args.length - 1; i++) {
    const a = args[i]!;
    const name = a.startsWith('--') ? a.slice(2) : null;
    const next = args[i + 1]!;
    if (name !== null && numeric.includes(name) && /^-\d/.test(next)) {
      throw new UsageError(`--${name} must be a whole number >= 0, got ${JSON.stringify(next)}`);
    }
  }
}

export type AppKind = 'raw' | 'node' | 'fetch';
const KINDS: readonly string[] = ['raw', 'node', 'fetch'];

/** What `scgi serve` makes of a module's default export. */
export interface DetectedApp {
  kind: AppKind;
  /** For the banner: 'Express app', 'Hono app (object with fetch)', ... */
  label: string;
}

const HANDLER_TAG = Symbol.for('scgi.handler');

function describeFunction(f: { length: number; name: string }): string {
  return `a function of ${f.length} argument${f.length === 1 ? '' : 's'}${f.name ? ` (${f.name})` : ''}`;
}

/**
 * Decide what a module's default export is, by what it is, never by a guess:
 * throws ERR_SCGI_INVALID_APP (naming the --type to pass) when it cannot tell.
 */
export function detectApp(app: unknown, declared?: unknown): DetectedApp {
  if (declared !== undefined) {
    const d = declared === 'scgi' ? 'raw' : declared;
    if (typeof d !== 'string' || !KINDS.includes(d)) {
      throw new ScgiError('ERR_SCGI_INVALID_APP', `the module exports scgiType = ${JSON.stringify(declared)}: it must be 'raw', 'node' or 'fetch'`);
    }
    return { kind: d as AppKind, label: `${d === 'raw' ? 'SCGI handler' : d === 'node' ? 'Node listener' : 'fetch handler'} (scgiType)` };
  }
  if (app === null || (typeof app !== 'object' && typeof app !== 'function')) {
    throw new ScgiError(
      'ERR_SCGI_INVALID_APP',
      `the module's default export is ${app === null ? 'null' : typeof app}: export an app (an Express, Koa, Fastify or Hono app, a fetch handler, a (req, res) listener or an SCGI handler)`,
    );
  }
  const a = app as Record<string, unknown>;
  if (typeof app === 'function' && (app as unknown as Record<symbol, unknown>)[HANDLER_TAG] === true)
    return { kind: 'raw', label: 'SCGI handler (from scgi/http or scgi/fetch)' };
  if (typeof a.fetch === 'function') {
    const name = (a.constructor as { name?: string } | undefined)?.name;
    return { kind: 'fetch', label: `${name && name !== 'Object' && name !== 'Function' ? `${name} app` : 'fetch app'} (object with fetch)` };
  }
  if (typeof app === 'function' && typeof a.handle === 'function' && typeof a.use === 'function') return { kind: 'node', label: 'Express/Connect app' };
  if (typeof a.callback === 'function' && typeof a.use === 'function' && Array.isArray(a.middleware)) return { kind: 'node', label: 'Koa app' };
  if (typeof a.routing === 'function' && typeof a.ready === 'function' && typeof a.inject === 'function') return { kind: 'node', label: 'Fastify app' };
  if (typeof app === 'function') {
    const f = app as unknown as { length: number; name: string };
    // f.length counts the parameters before the first rest or default one:
    // `(...args) => ...` (Astro's node handler) has length 0 like `() => ...`,
    // so 0 names no kind; one declared parameter is most likely `(request)`.
    const likely =
      f.length === 1
        ? ' (one declared parameter: most likely a fetch handler (request), --type fetch)'
        : f.length === 0
          ? ' (no declared parameter: a rest parameter (...args) or `arguments` may take any of them, so scgi cannot tell; see what it is called with)'
          : '';
    throw new ScgiError(
      'ERR_SCGI_INVALID_APP',
      `cannot tell what kind of app the default export is: ${describeFunction(f)} could be an SCGI handler (headers, client), ` +
        `a Node listener (req, res) or a fetch handler (request, env).\n` +
        `Pass --type raw, --type node or --type fetch${likely}, or export const scgiType = 'raw' | 'node' | 'fetch' from the module.`,
    );
  }
  throw new ScgiError(
    'ERR_SCGI_INVALID_APP',
    `the module's default export is an object without fetch(), callback() (Koa) or routing() (Fastify): not an app scgi can serve`,
  );
}

/** Turn an app of a known kind into an SCGI handler. */
export async function toHandler(app: unknown, kind: AppKind): Promise<Handler> {
  const a = app as Record<string, unknown> | null;
  if (kind === 'node') {
    const { fromNodeListener } = await import('../adapters/http.ts');
    if (a !== null && typeof a === 'object' && typeof a.callback === 'function' && Array.isArray(a.middleware)) {
      return fromNodeListener((a.callback as () => NodeListener)()); // Koa
    }
    if (a !== null && typeof a === 'object' && typeof a.routing === 'function' && typeof a.ready === 'function') {
      // Fastify: its router is its (req, res) handler once plugins are loaded
      await (a.ready as () => Promise<unknown>)();
      const routing = a.routing as NodeListener;
      return fromNodeListener((req, res) => routing.call(a, req, res));
    }
    return fromNodeListener(app as NodeListener);
  }
  if (kind === 'fetch') return (await import('../adapters/fetch.ts')).fromFetch(app as never);
  if (typeof app !== 'function')
    throw new ScgiError('ERR_SCGI_INVALID_APP', `--type raw needs a function (headers, client), the default export is ${app === null ? 'null' : typeof app}`);
  return app as Handler;
}

/** The path of the unix socket on descriptor `fd`, from /proc/net/unix (Linux); null when unknown. */
function inheritedSocketPath(fd: number): string | null {
  try {
    const link = readlinkSync(`/proc/self/fd/${fd}`);
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode === undefined) return null;
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[6] === inode && f[7] !== undefined && f[7].startsWith('/')) return f[7];
    }
  } catch {
    // not Linux, or gone
  }
  return null;
}

const SERVE_NUMERIC = [
  'port',
  'parallelism',
  'max-body-size',
  'max-connections',
  'header-timeout',
  'request-timeout',
  'shutdown-timeout',
  'slow-request-threshold',
  'worker-timeout',
  'max-requests',
  'max-requests-jitter',
  'max-rss',
];

/** A size in bytes: a whole number, optionally with K, M or G (powers of 1024), e.g. 512M. */
function size(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,16})([KMG]?)$/i.exec(v);
  const bytes = m === null ? Number.NaN : Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`--${name} must be a size in bytes, or with K, M or G (512M, 2G), got ${JSON.stringify(v)}`);
  return bytes;
}

async function cmdServe(args: string[]): Promise<void> {
  rejectNegativeNumbers(args, SERVE_NUMERIC);
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
      status: { type: 'string' },
      'access-log': { type: 'boolean' },
      'slow-request-threshold': { type: 'string' },
      'worker-timeout': { type: 'string' },
      'max-requests': { type: 'string' },
      'max-requests-jitter': { type: 'string' },
      'max-rss': { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new UsageError('scgi serve takes one APP module');
  // Every option is checked before the app is loaded: a usage error exits 2 at once.
  let kindArg: AppKind | undefined;
  if (values.type !== undefined) {
    const t = values.type === 'scgi' ? 'raw' : values.type;
    if (!KINDS.includes(t)) throw new UsageError(`--type must be raw, node or fetch, got ${JSON.stringify(values.type)}`);
    kindArg = t as AppKind;
  }
  const mode = values['socket-mode'];
  if (mode !== undefined && !/^0?[0-7]{3}$/.test(mode)) throw new UsageError(`--socket-mode must be octal, like 660, got ${JSON.stringify(mode)}`);
  const socketMode = mode === undefined ? undefined : parseInt(mode, 8);
  const parallelism = values.parallelism === 'auto' ? true : int('parallelism', values.parallelism, 1, 1024);
  let http: { host: string; port: number } | undefined;
  if (values.http !== undefined) {
    let a: ReturnType<typeof resolveAddress>;
    try {
      a = resolveAddress(values.http, 8080);
    } catch (err) {
      throw new UsageError(`--http takes host:port with a port from 1 to 65535, e.g. 127.0.0.1:8080: ${(err as Error).message}`);
    }
    if (a.kind !== 'tcp') throw new UsageError(`--http takes host:port, e.g. 127.0.0.1:8080, got ${JSON.stringify(values.http)}`);
    http = { host: a.host, port: a.port };
  }
  let socket: 'systemd' | { fd: number } | undefined;
  if (values.socket !== undefined) {
    if (values.socket === 'systemd') socket = 'systemd';
    else if (/^fd:\d+$/.test(values.socket)) socket = { fd: Number(values.socket.slice(3)) };
    else throw new UsageError("--socket takes 'systemd' or fd:N");
    if (values.address !== undefined || values.port !== undefined) throw new UsageError('--socket excludes --address and --port');
  }
  if (values.address !== undefined) {
    try {
      resolveAddress(values.address);
    } catch (err) {
      throw new UsageError(`--address: ${(err as Error).message}`);
    }
  }
  const workerTimeout = int('worker-timeout', values['worker-timeout'], 0, MAX_TIMEOUT);
  if (workerTimeout !== undefined && workerTimeout !== 0 && workerTimeout < MIN_WORKER_TIMEOUT) {
    throw new UsageError(`--worker-timeout must be 0 (off) or from ${MIN_WORKER_TIMEOUT} to ${MAX_TIMEOUT}, got ${JSON.stringify(values['worker-timeout'])}`);
  }
  const maxRequests = int('max-requests', values['max-requests']);
  const maxRss = size('max-rss', values['max-rss']);
  for (const [flag, v] of [
    ['--max-requests', maxRequests],
    ['--max-rss', maxRss],
  ] as const) {
    if (v !== undefined && v > 0 && (parallelism === undefined || parallelism === 1)) {
      throw new UsageError(`${flag} needs --parallelism 2 or more (a primary forks the replacement before the old worker stops)`);
    }
  }
  const options: ServeOptions = {
    socket,
    address: values.address,
    port: int('port', values.port, 0, 65535),
    parallelism,
    socketMode,
    socketGroup: values['socket-group'],
    strict: values.strict,
    maxBodySize: int('max-body-size', values['max-body-size']),
    maxConnections: int('max-connections', values['max-connections'], 1),
    headerTimeout: int('header-timeout', values['header-timeout'], 0, MAX_TIMEOUT),
    requestTimeout: int('request-timeout', values['request-timeout'], 0, MAX_TIMEOUT),
    shutdownTimeout: int('shutdown-timeout', values['shutdown-timeout'], 0, MAX_TIMEOUT),
    statusAddress: values.status,
    accessLog: values['access-log'],
    slowRequestThreshold: int('slow-request-threshold', values['slow-request-threshold'], 0, MAX_TIMEOUT),
    workerTimeout,
    maxRequests,
    maxRequestsJitter: int('max-requests-jitter', values['max-requests-jitter']),
    maxRss,
  };
  for (const k of Object.keys(options) as (keyof ServeOptions)[]) if (options[k] === undefined) delete options[k];

  const file = resolvePath(positionals[0]!);
  // An app whose top-level await (or whose startup: Fastify's ready()) never
  // settles leaves nothing to run: Node would exit 13 without a word. The
  // loop emptying while the app loads says so instead, exit 1.
  const stuck = () => {
    process.stderr.write(`scgi: cannot load ${file}: its top-level await (or its startup) never settled, and nothing was left to run\n`);
    process.exit(1);
  };
  process.on('beforeExit', stuck);
  let mod: { default?: unknown; scgiType?: unknown };
  let handler: Handler;
  let detected: DetectedApp;
  try {
    try {
      mod = await import(pathToFileURL(file).href);
    } catch (err) {
      throw new ScgiError('ERR_SCGI_APP_LOAD', `cannot load ${file}: ${(err as Error).message}`, { cause: err });
    }
    const app = mod.default;
    detected = kindArg !== undefined ? { kind: kindArg, label: `${kindArg} app (--type)` } : detectApp(app, mod.scgiType);
    handler = await toHandler(app, detected.kind);
  } finally {
    process.off('beforeExit', stuck);
  }

  const err = process.stderr;
  if (socketMode !== undefined && (socketMode & 0o002) !== 0 && cluster.isPrimary) {
    err.write(
      `scgi: warning: --socket-mode ${mode} lets every local user connect to the app and send it any CGI variables ` +
        `(REMOTE_USER, HTTPS...); docs/security.md: use 660 with --socket-group of the front's user.\n`,
    );
  }

  const server = await serve(handler, options);
  if (!cluster.isPrimary) return; // a worker: the primary prints
  let where = server.address();
  let inherited = '';
  if (socket !== undefined) {
    const fd = socket === 'systemd' ? 3 : socket.fd;
    inherited = ` (${socket === 'systemd' ? 'passed by systemd, ' : 'inherited '}fd ${fd})`;
    if (where === null) where = inheritedSocketPath(fd);
  }
  const isUnix = typeof where === 'string';
  const shown = where === null ? `the socket on fd ${socket === 'systemd' ? 3 : socket?.fd}` : isUnix ? (where as string) : formatAddress(where);
  const pass = where === null ? 'unix:/path/of/the/socket (the ListenStream= of the .socket unit)' : isUnix ? `unix:${where}` : formatAddress(where);
  const out = process.stdout;
  out.write(`scgi: serving ${file} (${detected.label}, parser ${parserInfo.backend}, transport ${server.transport}) on ${shown}${inherited}`);
  out.write(parallelism && parallelism !== 1 ? ` with ${(server as unknown as { workers: number[] }).workers.length} workers\n` : '\n');
  out.write(`\nnginx (inside a server { } block):\n\n    location / {\n        include scgi_params;\n        scgi_pass ${pass};\n    }\n\n`);
  if (isUnix && socket === undefined) {
    const group = options.socketGroup;
    out.write(
      `The socket is mode ${(options.socketMode ?? 0o660).toString(8)}${group ? `, group ${group}` : ''}: nginx's worker user must be able to write to it\n` +
        (group
          ? `(if nginx logs "Permission denied" and answers 502, check that nginx's worker user is in group ${group}, and that it can enter the socket's directory).\n`
          : `(if nginx logs "Permission denied" and answers 502, use --socket-group www-data).\n`),
    );
  }
  if (http !== undefined) {
    const { startDevFront } = await import('./dev-front.ts');
    const target = where === null ? null : isUnix ? (where as string) : formatAddress(where);
    if (target === null) throw new UsageError('--http needs an address it can connect to; the inherited socket has none it can tell');
    const front = await startDevFront({ app: target, listen: http });
    const a = front.address() as { address: string; port: number };
    out.write(`\nDevelopment HTTP front (not for production): http://${formatAddress(a)}/\n`);
    server.once('close', () => front.close());
    process.once('exit', () => front.close());
  } else if (where !== null) {
    out.write(`Try it: scgi request ${shown} /\n`);
  }
  if (options.statusAddress !== undefined) out.write(`Status: scgi status ${options.statusAddress} (GET /status, /metrics)\n`);
}

async function cmdStatus(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (positionals.length !== 1) throw new UsageError("scgi status takes one ADDRESS: the server's --status address");
  const { statusCommand } = await import('./status.ts');
  process.stdout.write(await statusCommand(positionals[0]!, values.json === true));
}

function parseHeaderArgs(list: string[] | undefined): [string, string][] {
  return (list ?? []).map((h) => {
    const i = h.indexOf(':');
    if (i <= 0) throw new UsageError(`-H takes 'Name: value', got ${JSON.stringify(h)}`);
    return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
  });
}

/** -d BODY or -d @FILE; an unreadable file is a usage error (exit 2). */
function bodyArg(data: string | undefined): string | Buffer | undefined {
  if (data === undefined || !data.startsWith('@')) return data;
  try {
    return readFileSync(data.slice(1));
  } catch (err) {
    throw new UsageError(`-d ${data}: cannot read ${data.slice(1)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const REQUEST_OPTIONS = {
  method: { type: 'string', short: 'X' },
  data: { type: 'string', short: 'd' },
  header: { type: 'string', short: 'H', multiple: true },
} as const;

async function cmdRequest(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: REQUEST_OPTIONS });
  const [address = defaultAddress(), uri = '/'] = positionals;
  const body = bodyArg(values.data);
  const req: ClientRequest = { uri, method: values.method, headers: parseHeaderArgs(values.header), body };
  // Streamed: a large (or endless) body is not buffered in memory.
  const res = await connecting(address, () => requestStream(address, req));
  // As curl -i: an HTTP status line, the fields, a blank line, the body.
  const out = process.stdout;
  out.write(`HTTP/1.1 ${res.status} ${res.statusText}\r\n`);
  for (const [n, v] of res.rawHeaders) out.write(`${n}: ${v}\r\n`);
  out.write('\r\n');
  await pipeline(res.body, out, { end: false });
}

/** Mark a failure to reach `address` so main() adds the "nothing listens there" hint, and only then. */
async function connecting<T>(address: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') (err as { connectHint?: string }).connectHint = address;
    throw err;
  }
}

/** Why a request failed, for the bench's error counts. */
function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string') return e.code;
  return (e as Error)?.message?.split('\n')[0] ?? String(err);
}

function fmtBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n.toFixed(0)} B`;
}

async function cmdBench(args: string[]): Promise<void> {
  rejectNegativeNumbers(args, ['requests', 'concurrency', 'time']);
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      requests: { type: 'string', short: 'n' },
      concurrency: { type: 'string', short: 'c' },
      time: { type: 'string', short: 't' },
      ...REQUEST_OPTIONS,
    },
  });
  const [address = defaultAddress(), uri = '/'] = positionals;
  const total = int('requests', values.requests, 1) ?? 10_000;
  const concurrency = int('concurrency', values.concurrency, 1, 10_000) ?? 16;
  const seconds = int('time', values.time, 1, 86_400) ?? 10;
  const body = bodyArg(values.data);
  const req: ClientRequest = { uri, method: values.method, headers: parseHeaderArgs(values.header), body, timeout: 10_000 };
  const deadline = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let started = 0;
  let errors = 0;
  let bytes = 0;
  const reasons = new Map<string, number>();
  const statuses = new Map<number, number>();
  const t0 = performance.now();
  const tty = process.stderr.isTTY === true;
  const progress = tty
    ? setInterval(() => {
        const el = (performance.now() - t0) / 1000;
        process.stderr.write(`\r${latencies.length} responses, ${errors} errors, ${(latencies.length / el).toFixed(0)} req/s, ${el.toFixed(0)} s `);
      }, 1000)
    : null;
  const worker = async () => {
    while (started < total && performance.now() < deadline) {
      started++;
      const s = performance.now();
      try {
        const res = await request(address, req);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        bytes += res.body.length;
        latencies.push(performance.now() - s);
      } catch (err) {
        errors++;
        const r = reason(err);
        reasons.set(r, (reasons.get(r) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (progress !== null) {
    clearInterval(progress);
    process.stderr.write('\r\x1b[K');
  }
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!.toFixed(2);
  const out = process.stdout;
  out.write(`${latencies.length} responses, ${errors} errors in ${elapsed.toFixed(2)} s (concurrency ${concurrency})\n`);
  out.write(`requests/s: ${(latencies.length / elapsed).toFixed(0)}\n`);
  out.write(`body bytes/s: ${fmtBytes(bytes / elapsed)}/s (${fmtBytes(bytes)} in all)\n`);
  if (latencies.length > 0) out.write(`latency ms: p50 ${pct(50)}  p90 ${pct(90)}  p99 ${pct(99)}  max ${latencies.at(-1)!.toFixed(2)}\n`);
  else out.write('latency ms: - (no response)\n');
  out.write(`statuses: ${statuses.size > 0 ? [...statuses].map(([s, n]) => `${s}×${n}`).join(' ') : '-'}\n`);
  if (errors > 0)
    out.write(
      `errors: ${[...reasons]
        .sort((a, b) => b[1] - a[1])
        .map(([r, n]) => `${r}×${n}`)
        .join(' ')}\n`,
    );
  if (reasons.has('ENOENT') || reasons.has('ECONNREFUSED')) {
    process.stderr.write(`scgi: nothing listens on ${address}: is the app running, on this address?\n`);
  }
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
    else if (cmd === 'status') await cmdStatus(rest);
    else throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
    return (process.exitCode as number | undefined) ?? 0;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (err instanceof UsageError || code?.startsWith('ERR_PARSE_ARGS') || code === 'ERR_SCGI_INVALID_APP' || code === 'ERR_SCGI_INVALID_OPTION') {
      process.stderr.write(`scgi: ${(err as Error).message}\n(see scgi --help)\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException; connectHint?: string };
    let hint = '';
    if (e.code === 'ERR_SCGI_ADDRESS_IN_USE') hint = '\n(another server is listening there: stop it, or pick another --address)';
    if (e.code === 'EACCES' || e.cause?.code === 'EACCES') hint = '\n(permission denied: check the socket file and its directory, or run as the owner)';
    if (e.connectHint !== undefined) hint = `\n(nothing listens on ${e.connectHint}: is the app running, on this address?)`;
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
  // `serve` keeps running; the others exit with their code, once what they
  // wrote is out: stdout to a pipe may still hold bytes (process.exit drops
  // them; `scgi request` of 40 MiB lost its last 28 KiB on Node 22 and 26).
  if (process.argv[2] !== 'serve' || code !== 0) {
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    process.exit(code);
  }
}
