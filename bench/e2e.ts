/**
 * End-to-end benchmark: wrk → one real nginx → the app, in one run,
 * interleaved, for:
 *   ceiling       nginx `return 200` (no upstream)
 *   http-ka       Node http behind proxy_pass with an upstream keepalive pool
 *   http-new      Node http behind default proxy_pass (a new connection per request, like SCGI)
 *   scgi-*        scgi over a unix socket and TCP, parallelism 1 and 2, each parser
 *   hono/express  the same Hono and Express apps through scgi/fetch and scgi/http, and
 *                 on @hono/node-server / node:http behind a keepalive proxy_pass
 *                 (with --baseline, the adapters of that build too)
 * and reports req/s, p50/p99 latency and the Node CPU µs per request (utime +
 * stime of the app's processes from /proc, before/after each run).
 *
 *   node --import ./scripts/ts-loader.mjs bench/e2e.ts [--seconds 5] [--rounds 2]
 *        [--connections 50] [--workers 1|auto|both] [--only name,name] [--pin] [--out FILE]
 *        [--baseline DIST_DIR]   (adds a row served by another build, for before/after)
 *
 * Needs nginx and wrk (apt-get install -y nginx wrk) and a built package
 * (npm run build; npm run build:native for the native rows). Loopback and unix
 * sockets only; everything it starts is stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startNginx, freePort } from '../test/fronts/nginx.ts';
import { tempDir } from '../test/helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    workers: { type: 'string', default: 'both' },
    only: { type: 'string' },
    pin: { type: 'boolean', default: false },
    out: { type: 'string' },
    baseline: { type: 'string' },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const CONNECTIONS = Number(args.connections);
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

for (const bin of ['wrk', 'nginx']) {
  if (spawnSync('which', [bin]).status !== 0) {
    console.error(`${bin} is required: apt-get install -y nginx wrk`);
    process.exit(1);
  }
}
if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
  console.error('build first: npm run build');
  process.exit(1);
}

interface Target {
  name: string;
  location: string;
  /** pids whose CPU counts (filled once started) */
  pids: () => number[];
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerReq: number | null;
  errors: number;
}

const children: ChildProcess[] = [];
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function pin(cmd: string[], cpu: string | null): string[] {
  return args.pin && cpu !== null ? ['taskset', '-c', cpu, ...cmd] : cmd;
}

function startProcess(cmd: string[], env: Record<string, string>, readyPattern: RegExp): Promise<ChildProcess> {
  const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      if (readyPattern.test(out)) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`${cmd.join(' ')} exited ${code}`)));
  });
}

/** The process and all its descendants (cluster workers). */
function tree(pid: number): number[] {
  const all = [pid];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (kids) for (const k of kids.split(/\s+/)) all.push(...tree(Number(k)));
    }
  } catch {
    // gone
  }
  return all;
}

function cpuTicks(pids: number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      sum += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      // exited
    }
  }
  return sum;
}

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

function wrk(url: string): Promise<{ rps: number; p50: number; p99: number; requests: number; errors: number }> {
  const cmd = pin(['wrk', '-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', url], '0');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}: ${out}`));
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const p50 = ms(/^\s*50(?:\.0+)?%\s+(\S+)/m.exec(out)?.[1] ?? '');
      const p99 = ms(/^\s*99(?:\.0+)?%\s+(\S+)/m.exec(out)?.[1] ?? '');
      if (Number.isNaN(p50) || Number.isNaN(p99)) console.error(`could not read latencies from wrk:\n${out}`);
      const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const errors = non2xx + (sock ? Number(sock[1]) + Number(sock[3]) + Number(sock[4]) : 0);
      resolve({ rps, p50, p99, requests, errors });
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function runMode(nginxWorkers: '1' | 'auto'): Promise<Map<string, Sample[]>> {
  const dir = tempDir('scgi-e2e-');
  const { chmodSync } = await import('node:fs');
  chmodSync(dir.path, 0o711);
  const targets: Target[] = [];
  const upstreams: string[] = [];
  const locations: string[] = [];
  const nodeCpu = args.pin ? '1' : null;
  const nativeBuilt = readdirSync(ROOT).some((f) => f.startsWith('scgi.') && f.endsWith('.node'));

  // Node http hello
  const httpPort = await freePort();
  const http = await startProcess(pin([process.execPath, 'bench/apps/http-hello.mjs'], nodeCpu), { PORT: String(httpPort) }, /ready/);
  upstreams.push(`upstream node_ka { server 127.0.0.1:${httpPort}; keepalive 64; }`);
  locations.push(`location = /ceiling { return 200 "Hello, world!\\n"; }`);
  locations.push(`location = /http-ka { proxy_pass http://node_ka/; proxy_http_version 1.1; proxy_set_header Connection ""; }`);
  locations.push(`location = /http-new { proxy_pass http://127.0.0.1:${httpPort}/; }`);
  targets.push({ name: 'ceiling (nginx return 200)', location: '/ceiling', pids: () => [] });
  targets.push({ name: 'http-ka (proxy_pass, keepalive)', location: '/http-ka', pids: () => [http.pid!] });
  targets.push({ name: 'http-new (proxy_pass, new conn)', location: '/http-new', pids: () => [http.pid!] });

  // the floor: a minimal net.Socket SCGI server (bench/apps/minimal-scgi.mjs)
  if (!args.only || args.only.includes('floor')) {
    const sock = join(dir.path, 'floor.sock');
    const floor = await startProcess(pin([process.execPath, 'bench/apps/minimal-scgi.mjs'], nodeCpu), { ADDRESS: sock }, /ready/);
    chmodSync(sock, 0o666);
    locations.push(`location = /floor { include scgi_params; scgi_pass unix:${sock}; }`);
    targets.push({ name: 'floor: minimal SCGI server, unix', location: '/floor', pids: () => [floor.pid!] });
  }

  // the native transport engine alone, no request lifecycle (bench/apps/native-engine-hello.mjs)
  if (nativeBuilt && process.platform === 'linux' && (!args.only || args.only.includes('engine'))) {
    for (const kind of ['unix', 'tcp'] as const) {
      const address = kind === 'unix' ? join(dir.path, 'engine.sock') : `127.0.0.1:${await freePort()}`;
      const engine = await startProcess(pin([process.execPath, 'bench/apps/native-engine-hello.mjs'], nodeCpu), { ADDRESS: address }, /ready/);
      if (kind === 'unix') chmodSync(address, 0o666);
      const loc = `/engine-${kind}`;
      locations.push(`location = ${loc} { include scgi_params; scgi_pass ${kind === 'unix' ? `unix:${address}` : address}; }`);
      targets.push({ name: `engine: native transport alone, ${kind}`, location: loc, pids: () => [engine.pid!] });
    }
  }

  // scgi variants
  const variants: { name: string; transport: 'unix' | 'tcp'; parallelism: number; parser: 'native' | 'js'; dist?: string; conn?: 'native' | 'net' }[] = [];
  for (const parser of nativeBuilt ? (['native', 'js'] as const) : (['js'] as const)) {
    variants.push({ name: `scgi unix p1 ${parser}`, transport: 'unix', parallelism: 1, parser });
    variants.push({ name: `scgi tcp p1 ${parser}`, transport: 'tcp', parallelism: 1, parser });
  }
  const best = nativeBuilt ? 'native' : 'js';
  if (nativeBuilt && process.platform === 'linux') {
    // serve() on the native transport (src/transport/native.ts), in process and in cluster workers.
    variants.push({ name: 'scgi unix p1 native-transport', transport: 'unix', parallelism: 1, parser: 'native', conn: 'native' });
    variants.push({ name: 'scgi tcp p1 native-transport', transport: 'tcp', parallelism: 1, parser: 'native', conn: 'native' });
    variants.push({ name: 'scgi unix p2 native-transport', transport: 'unix', parallelism: 2, parser: 'native', conn: 'native' });
    variants.push({ name: 'scgi tcp p2 native-transport', transport: 'tcp', parallelism: 2, parser: 'native', conn: 'native' });
  }
  variants.push({ name: `scgi unix p2 ${best}`, transport: 'unix', parallelism: 2, parser: best });
  variants.push({ name: `scgi tcp p2 ${best}`, transport: 'tcp', parallelism: 2, parser: best });
  if (args.baseline) {
    const dist = join(args.baseline, 'index.js');
    variants.push({ name: `baseline unix p1 ${best}`, transport: 'unix', parallelism: 1, parser: best, dist });
    if (nativeBuilt && process.platform === 'linux') {
      variants.push({ name: 'baseline unix p1 native-transport', transport: 'unix', parallelism: 1, parser: 'native', dist, conn: 'native' });
      variants.push({ name: 'baseline tcp p1 native-transport', transport: 'tcp', parallelism: 1, parser: 'native', dist, conn: 'native' });
      // the cluster path (a worker heartbeat each second since issue 19) against the same in the baseline
      variants.push({ name: 'baseline unix p2 native-transport', transport: 'unix', parallelism: 2, parser: 'native', dist, conn: 'native' });
    }
  }
  // the adapters: the same Hono and Express hello apps through scgi/fetch and
  // scgi/http, and on node:http (@hono/node-server, http.createServer)
  // behind a keepalive proxy_pass; with --baseline, the adapters of that build too
  if (!args.only || /hono|express|adapter/.test(args.only)) {
    const apps: { name: string; app: string; kind: 'scgi' | 'http'; dist?: string; conn?: 'native' | 'net' }[] = [
      { name: 'hono scgi/fetch unix', app: 'hono-scgi.mjs', kind: 'scgi' },
      { name: 'hono @hono/node-server (proxy_pass, keepalive)', app: 'hono-node.mjs', kind: 'http' },
      { name: 'express scgi/http unix', app: 'express-scgi.mjs', kind: 'scgi' },
      { name: 'express node:http (proxy_pass, keepalive)', app: 'express-node.mjs', kind: 'http' },
    ];
    if (nativeBuilt && process.platform === 'linux') {
      // The same adapters on the native transport (the rows above are on net).
      apps.push({ name: 'hono scgi/fetch unix native-transport', app: 'hono-scgi.mjs', kind: 'scgi', conn: 'native' });
      apps.push({ name: 'express scgi/http unix native-transport', app: 'express-scgi.mjs', kind: 'scgi', conn: 'native' });
    }
    if (args.baseline) {
      apps.push({ name: 'baseline hono scgi/fetch unix', app: 'hono-scgi.mjs', kind: 'scgi', dist: args.baseline });
      apps.push({ name: 'baseline express scgi/http unix', app: 'express-scgi.mjs', kind: 'scgi', dist: args.baseline });
      if (nativeBuilt && process.platform === 'linux') {
        apps.push({ name: 'baseline hono scgi/fetch unix native-transport', app: 'hono-scgi.mjs', kind: 'scgi', dist: args.baseline, conn: 'native' });
        apps.push({ name: 'baseline express scgi/http unix native-transport', app: 'express-scgi.mjs', kind: 'scgi', dist: args.baseline, conn: 'native' });
      }
    }
    for (const [i, a] of apps.entries()) {
      const loc = `/a${i}`;
      if (a.kind === 'scgi') {
        const address = join(dir.path, `a${i}.sock`);
        const child = await startProcess(
          pin([process.execPath, `bench/apps/${a.app}`], nodeCpu),
          { ADDRESS: address, SOCKET_GROUP: 'nogroup', SCGI_DIST: a.dist ?? '', ROUTE: loc, SCGI_TRANSPORT: a.conn ?? 'net' },
          /ready/,
        );
        locations.push(`location = ${loc} { include scgi_params; scgi_pass unix:${address}; }`);
        targets.push({ name: a.name, location: loc, pids: () => [child.pid!] });
      } else {
        const port = await freePort();
        const child = await startProcess(pin([process.execPath, `bench/apps/${a.app}`], nodeCpu), { PORT: String(port), ROUTE: loc }, /ready/);
        upstreams.push(`upstream a${i} { server 127.0.0.1:${port}; keepalive 64; }`);
        locations.push(`location = ${loc} { proxy_pass http://a${i}; proxy_http_version 1.1; proxy_set_header Connection ""; }`);
        targets.push({ name: a.name, location: loc, pids: () => [child.pid!] });
      }
    }
  }

  for (const [i, v] of variants.entries()) {
    if (args.only && !args.only.split(',').some((o) => v.name.includes(o))) continue;
    const address = v.transport === 'unix' ? join(dir.path, `s${i}.sock`) : `127.0.0.1:${await freePort()}`;
    const child = await startProcess(
      pin([process.execPath, 'bench/apps/scgi-hello.mjs'], v.parallelism === 1 ? nodeCpu : null),
      {
        ADDRESS: address,
        PARALLELISM: String(v.parallelism),
        SCGI_PARSER: v.parser,
        SOCKET_GROUP: 'nogroup',
        SCGI_DIST: v.dist ?? '',
        SCGI_TRANSPORT: v.conn ?? 'net',
      },
      /ready/,
    );
    const loc = `/s${i}`;
    locations.push(`location = ${loc} { include scgi_params; scgi_pass ${v.transport === 'unix' ? `unix:${address}` : address}; }`);
    targets.push({ name: v.name, location: loc, pids: () => tree(child.pid!) });
  }

  const nginx = await startNginx(dir.path, locations.join('\n    '), upstreams.join('\n  '));
  // worker_processes: startNginx writes 1; rewrite for auto by restarting with a patched conf
  const url = nginx.url;
  let stopNginx = nginx.stop;
  if (nginxWorkers === 'auto') {
    await nginx.stop();
    const conf = readFileSync(join(dir.path, 'nginx.conf'), 'utf8').replace('worker_processes 1;', 'worker_processes auto;');
    writeFileSync(join(dir.path, 'nginx.conf'), conf);
    const bin = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
    const child = spawn(bin, ['-p', dir.path, '-c', join(dir.path, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' });
    children.push(child);
    await new Promise((r) => setTimeout(r, 500));
    stopNginx = async () => {
      child.kill('SIGQUIT');
      await new Promise((r) => child.once('exit', r));
    };
  } else if (args.pin) {
    // nginx was started unpinned by the helper; pin its processes to cpu 0
    const pid = Number(readFileSync(join(dir.path, 'nginx.pid'), 'utf8'));
    for (const p of tree(pid)) spawnSync('taskset', ['-pc', '0', String(p)], { stdio: 'ignore' });
  }

  const selected = targets.filter((t) => !args.only || t.location === '/ceiling' || args.only.split(',').some((o) => t.name.includes(o)));
  const results = new Map<string, Sample[]>();
  // warm up every target once
  for (const t of selected) await fetch(`${url}${t.location}`).then((r) => r.text());
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of selected) {
      const pids = t.pids();
      const before = cpuTicks(pids);
      const r = await wrk(`${url}${t.location}`);
      const after = cpuTicks(pids);
      const cpuUsPerReq = pids.length ? (((after - before) / TICK) * 1e6) / r.requests : null;
      const list = results.get(t.name) ?? [];
      list.push({ rps: r.rps, p50: r.p50, p99: r.p99, cpuUsPerReq, errors: r.errors });
      results.set(t.name, list);
      console.error(
        `[nginx ${nginxWorkers}] round ${round + 1} ${t.name}: ${r.rps.toFixed(0)} req/s p50 ${r.p50}ms p99 ${r.p99}ms cpu ${cpuUsPerReq?.toFixed(1) ?? '-'} µs/req errors ${r.errors}`,
      );
    }
  }
  await stopNginx();
  for (const c of children.splice(0)) {
    if (c.exitCode === null) {
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    }
  }
  dir.cleanup();
  return results;
}

function table(mode: string, results: Map<string, Sample[]>): string {
  const ka = results.get('http-ka (proxy_pass, keepalive)');
  const kaRps = ka ? median(ka.map((s) => s.rps)) : NaN;
  const kaCpu = ka ? median(ka.map((s) => s.cpuUsPerReq ?? NaN)) : NaN;
  const nw = results.get('http-new (proxy_pass, new conn)');
  const nwRps = nw ? median(nw.map((s) => s.rps)) : NaN;
  let out = `\n### nginx worker_processes ${mode}\n\n| target | req/s | p50 ms | p99 ms | Node CPU µs/req | req/s ÷ http-ka | req/s ÷ http-new | CPU ÷ http-ka | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
  for (const [name, samples] of results) {
    const rps = median(samples.map((s) => s.rps));
    const cpu = samples[0]!.cpuUsPerReq === null ? null : median(samples.map((s) => s.cpuUsPerReq!));
    out += `| ${name} | ${rps.toFixed(0)} | ${median(samples.map((s) => s.p50)).toFixed(2)} | ${median(samples.map((s) => s.p99)).toFixed(2)} | ${cpu === null ? '–' : cpu.toFixed(1)} | ${(rps / kaRps).toFixed(2)} | ${(rps / nwRps).toFixed(2)} | ${cpu === null ? '–' : (cpu / kaCpu).toFixed(2)} | ${samples.reduce((a, s) => a + s.errors, 0)} |\n`;
  }
  // What each adapter adds over the raw handler under it, in Node CPU per request.
  const cpuOf = (name: string) => {
    const xs = results.get(name);
    return xs === undefined || xs[0]!.cpuUsPerReq === null ? NaN : median(xs.map((x) => x.cpuUsPerReq!));
  };
  const rawScgi = [...results.keys()].find((k) => /^scgi unix p1 /.test(k));
  const rawBase = [...results.keys()].find((k) => /^baseline unix p1 /.test(k));
  const rows: [string, string, string][] = [
    ['hono scgi/fetch unix', rawScgi ?? '', 'this build'],
    ['baseline hono scgi/fetch unix', rawBase ?? '', 'baseline build'],
    ['hono @hono/node-server (proxy_pass, keepalive)', 'http-ka (proxy_pass, keepalive)', 'node:http'],
    ['express scgi/http unix', rawScgi ?? '', 'this build'],
    ['baseline express scgi/http unix', rawBase ?? '', 'baseline build'],
    ['express node:http (proxy_pass, keepalive)', 'http-ka (proxy_pass, keepalive)', 'node:http'],
  ];
  const present = rows.filter(([app, raw]) => results.has(app) && results.has(raw));
  if (present.length > 0) {
    out += `\n| app | over the raw handler of | Node CPU µs/req | raw handler µs/req | added by the adapter µs/req |\n|---|---|---:|---:|---:|\n`;
    for (const [app, raw, label] of present) {
      const a = cpuOf(app);
      const r = cpuOf(raw);
      out += `| ${app} | ${label} (${raw}) | ${a.toFixed(1)} | ${r.toFixed(1)} | ${(a - r).toFixed(1)} |\n`;
    }
  }
  return out;
}

/** A horizontal bar chart of req/s relative to http-ka, as SVG. */
function chart(all: [string, Map<string, Sample[]>][]): string {
  const rows: { label: string; ratio: number }[] = [];
  for (const [mode, results] of all) {
    const ka = median(results.get('http-ka (proxy_pass, keepalive)')!.map((s) => s.rps));
    for (const [name, samples] of results) rows.push({ label: `[${mode}] ${name}`, ratio: median(samples.map((s) => s.rps)) / ka });
  }
  const max = Math.max(...rows.map((r) => r.ratio), 1.2);
  const w = 760;
  const left = 300;
  const h = 22 * rows.length + 40;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">\n`;
  svg += `<text x="10" y="16" font-weight="bold">req/s relative to Node http behind proxy_pass with keepalive (= 1.0)</text>\n`;
  const x1 = left + ((w - left - 60) * 1) / max;
  rows.forEach((r, i) => {
    const y = 30 + i * 22;
    const bw = ((w - left - 60) * r.ratio) / max;
    const color = r.label.includes('scgi') ? '#2b7bb9' : r.label.includes('ceiling') ? '#999' : '#e08a2c';
    svg += `<text x="${left - 6}" y="${y + 12}" text-anchor="end">${r.label}</text><rect x="${left}" y="${y}" width="${bw.toFixed(1)}" height="16" fill="${color}"/><text x="${(left + bw + 4).toFixed(1)}" y="${y + 12}">${r.ratio.toFixed(2)}</text>\n`;
  });
  svg += `<line x1="${x1}" y1="24" x2="${x1}" y2="${h - 4}" stroke="#333" stroke-dasharray="3,3"/>\n</svg>\n`;
  return svg;
}

const modes: ('1' | 'auto')[] = args.workers === 'both' ? ['1', 'auto'] : [args.workers === 'auto' ? 'auto' : '1'];
const all: [string, Map<string, Sample[]>][] = [];
for (const mode of modes) all.push([mode, await runMode(mode)]);

const cpu = cpus()[0]?.model ?? 'unknown';
let report = `## End to end through nginx (bench/e2e.ts)\n\nCommand: \`node --import ./scripts/ts-loader.mjs bench/e2e.ts ${process.argv.slice(2).join(' ')}\`\n`;
report += `Machine: ${cpus().length} cores (${cpu}), Node ${process.version}, ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()}, wrk -t1 -c${CONNECTIONS}, ${SECONDS} s per run, ${ROUNDS} interleaved rounds (medians).${args.pin ? ' Pinned: nginx and wrk on cpu 0, parallelism-1 Node processes on cpu 1.' : ' Not pinned.'}\n`;
report += `Node CPU µs/req = (utime+stime of the app process and its workers) / requests, from /proc.\n`;
for (const [mode, results] of all) report += table(mode, results);
if (args.out) {
  mkdirSync(join(args.out, '..'), { recursive: true });
  writeFileSync(args.out, report);
  writeFileSync(args.out.replace(/\.md$/, '.svg'), chart(all));
}
console.log(report);
cleanup();
process.exit(0);
