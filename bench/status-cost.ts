/**
 * What the observability options cost per request (src/status/): a raw
 * handler on a unix socket at parallelism 1, loaded by `scgi bench`
 * (no front), interleaved over rounds, for:
 *   baseline    another build (--baseline DIST_DIR), the options unknown to it
 *   off         this build, no option
 *   status      statusAddress (the monitor: a record and a histogram bucket per request)
 *   log-fn      accessLog: a function that drops the entry
 *   log-stdout  accessLog: true (lines to stdout, here /dev/null)
 * and reports req/s and the app's CPU µs per request (utime + stime from /proc).
 *
 *   node --import ./scripts/ts-loader.mjs bench/status-cost.ts [--requests 30000] [--rounds 3] [--baseline DIST_DIR]
 */
import { spawn, spawnSync } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tempDir } from '../test/helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = parseArgs({
  options: { requests: { type: 'string', default: '30000' }, rounds: { type: 'string', default: '3' }, baseline: { type: 'string' } },
});
const N = Number(args.requests);
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

const variants: { name: string; dist: string; options: string }[] = [
  ...(args.baseline ? [{ name: 'baseline', dist: args.baseline, options: '{}' }] : []),
  { name: 'off', dist: join(ROOT, 'dist'), options: '{}' },
  { name: 'status', dist: join(ROOT, 'dist'), options: '{ statusAddress: STATUS }' },
  { name: 'log-fn', dist: join(ROOT, 'dist'), options: '{ accessLog: () => {} }' },
  { name: 'log-stdout', dist: join(ROOT, 'dist'), options: '{ accessLog: true }' },
];

function cpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

async function run(v: (typeof variants)[number]): Promise<{ rps: number; us: number }> {
  const dir = tempDir('scgi-cost-');
  const sock = join(dir.path, 'app.sock');
  const app = `import { serve } from ${JSON.stringify(join(v.dist, 'index.js'))};
const STATUS = ${JSON.stringify(join(dir.path, 'status.sock'))};
await serve((h, c) => { c.writeHead(200, { 'Content-Type': 'text/plain' }); c.end('hello\\n'); }, { address: ${JSON.stringify(sock)}, ...${v.options} });
process.stderr.write('ready\\n');`;
  const devnull = openSync('/dev/null', 'w');
  const child = spawn(process.execPath, ['--input-type=module', '-e', app], { stdio: ['ignore', devnull, 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (c: Buffer) => (String(c).includes('ready') ? resolve() : undefined));
    child.once('exit', (code) => reject(new Error(`${v.name} exited ${code}`)));
  });
  const bench = (n: number) =>
    spawnSync(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), 'bench', sock, '/', '-n', String(n), '-c', '16', '-t', '120'], { encoding: 'utf8' })
      .stdout;
  bench(3000);
  const before = cpu(child.pid!);
  const out = bench(N);
  const used = cpu(child.pid!) - before;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  dir.cleanup();
  const rps = Number(/requests\/s: (\d+)/.exec(out)?.[1] ?? Number.NaN);
  return { rps, us: (used * 1e6) / N };
}

const results = new Map<string, { rps: number; us: number }[]>();
for (let r = 0; r < Number(args.rounds); r++) {
  for (const v of variants) {
    const x = await run(v);
    (results.get(v.name) ?? results.set(v.name, []).get(v.name)!).push(x);
    console.error(`round ${r + 1} ${v.name}: ${x.rps} req/s, ${x.us.toFixed(1)} µs/req`);
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
let table = `| variant | req/s (median) | app CPU µs/req (median) | all rounds µs/req |\n|---|---:|---:|---|\n`;
for (const [name, xs] of results) {
  table += `| ${name} | ${median(xs.map((x) => x.rps))} | ${median(xs.map((x) => x.us)).toFixed(1)} | ${xs.map((x) => x.us.toFixed(1)).join(', ')} |\n`;
}
console.log(table);
