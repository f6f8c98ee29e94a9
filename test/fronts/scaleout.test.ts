// Scale-out: two scgi instances (separate processes) on two TCP ports behind
// one nginx upstream, from examples/nginx/scgi-upstream.conf. The load is
// spread across both; one is SIGKILLed mid-load and the browser still gets
// only 200s (scgi_next_upstream error timeout).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers.ts';
import { EXAMPLES } from './matrix.ts';
import { freePort, startNginx, type Nginx } from './nginx.ts';

const APP = fileURLToPath(new URL('../apps/app.mjs', import.meta.url));
const dir = tempDir('scgi-scaleout-');

interface Instance {
  child: ChildProcess;
  pid: number;
  port: number;
}

async function startInstance(): Promise<Instance> {
  const port = await freePort();
  const child = spawn(process.execPath, [APP], {
    env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify({ address: `127.0.0.1:${port}` }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      const line = out.split('\n').find((l) => l.includes('"ready"'));
      if (line) resolve(JSON.parse(line).pid);
    });
    child.once('exit', (code) => reject(new Error(`instance exited ${code}: ${out}`)));
  });
  return { child, pid, port };
}

const stopped = (c: ChildProcess) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r())));

let a: Instance;
let b: Instance;
let nginx: Nginx;

beforeAll(async () => {
  [a, b] = await Promise.all([startInstance(), startInstance()]);
  const example = readFileSync(join(EXAMPLES, 'nginx/scgi-upstream.conf'), 'utf8')
    .replace('server 127.0.0.1:6501;', `server 127.0.0.1:${a.port};`)
    .replace('server 127.0.0.1:6502;', `server 127.0.0.1:${b.port};`);
  const [httpPart, serverPart] = example.split('# --- in server { } ---');
  nginx = await startNginx(dir.path, serverPart!, httpPart!.split('# --- in http { } ---')[1]!);
});

afterAll(async () => {
  await nginx?.stop();
  for (const i of [a, b]) {
    if (i && i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGTERM');
  }
  await Promise.all([a, b].filter(Boolean).map((i) => stopped(i.child)));
  dir.cleanup();
});

describe('two instances behind one nginx upstream', () => {
  it('spreads the load, and loses no request when one is killed mid-load', async () => {
    const TOTAL = 400;
    const CONCURRENCY = 8;
    const KILL_AFTER = 100;
    const results: { status: number; pid: number | null; afterKill: boolean }[] = [];
    let next = 0;
    let killed = false;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        const startedAfterKill = killed;
        const res = await fetch(`${nginx.url}/req/${i}`);
        await res.arrayBuffer();
        const pid = res.headers.get('x-pid');
        results.push({ status: res.status, pid: pid === null ? null : Number(pid), afterKill: startedAfterKill });
        if (results.length === KILL_AFTER && !killed) {
          b.child.kill('SIGKILL');
          await stopped(b.child);
          killed = true;
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    expect(results).toHaveLength(TOTAL);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    const before = results.slice(0, KILL_AFTER);
    // round robin: each instance served a fair share before the kill
    expect(before.filter((r) => r.pid === a.pid).length).toBeGreaterThan(KILL_AFTER / 4);
    expect(before.filter((r) => r.pid === b.pid).length).toBeGreaterThan(KILL_AFTER / 4);
    // after the kill, everything went to the survivor
    const after = results.filter((r) => r.afterKill);
    expect(after.length).toBeGreaterThan(200);
    expect(after.every((r) => r.pid === a.pid)).toBe(true);
    // nginx did meet the dead instance and moved on
    expect(nginx.errorLog()).toMatch(/Connection refused|prematurely closed|reset by peer/);
  });
});
