// `scgi serve` supervision flags (issue 19 item 4), through the CLI process:
// --worker-timeout, --max-requests, --max-requests-jitter, --max-rss.
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../src/client/request.ts';
import { tempDir } from './helpers.ts';
import { runCli, serveCli } from './cli-process.ts';

const dir = tempDir('scgi-cli-sup-');
afterAll(() => dir.cleanup());

describe('scgi serve supervision flags', () => {
  it('--help lists them', () => {
    const r = runCli(['--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--worker-timeout MS', '--max-requests N', '--max-requests-jitter N', '--max-rss SIZE']) expect(r.stdout).toContain(flag);
  });

  for (const [args, message] of [
    [['--worker-timeout', '500'], /--worker-timeout must be 0 \(off\) or from 2000 to 2147483647, got "500"/],
    [['--worker-timeout', '-1'], /--worker-timeout must be a whole number >= 0, got "-1"/],
    [['--max-rss', '12X', '--parallelism', '2'], /--max-rss must be a size in bytes, or with K, M or G \(512M, 2G\), got "12X"/],
    [['--max-requests', '100'], /--max-requests needs --parallelism 2 or more/],
    [['--max-rss', '512M', '--parallelism', '1'], /--max-rss needs --parallelism 2 or more/],
    [['--max-requests-jitter', 'many'], /--max-requests-jitter must be a whole number >= 0, got "many"/],
  ] as const) {
    it(`serve ${args.join(' ')}: exit 2`, () => {
      const r = runCli(['serve', 'examples/hello.js', '--address', join(dir.path, 'never.sock'), ...args]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }

  it('--parallelism 2 --max-requests 20 --max-requests-jitter 5 --max-rss 2G --worker-timeout 5000: workers are recycled, no request fails', async () => {
    const app = join(dir.path, 'pid-app.mjs');
    writeFileSync(
      app,
      "export const scgiType = 'raw';\nexport default (headers, client) => { client.writeHead(200, { 'X-Pid': String(process.pid) }); client.end('ok\\n'); };\n",
    );
    const sock = join(dir.path, 'recycle.sock');
    const { child } = await serveCli(
      [app, '--address', sock, '--parallelism', '2', '--max-requests', '20', '--max-requests-jitter', '5', '--max-rss', '2G', '--worker-timeout', '5000'],
      /with 2 workers/,
    );
    const pids = new Set<number>();
    const failures: string[] = [];
    // one request at a time, 5 ms apart, until four generations of workers answered (bounded)
    for (let i = 0; i < 1000 && pids.size < 4; i++) {
      await new Promise((r) => setTimeout(r, 5));
      try {
        const res = await request(sock, { uri: `/?i=${i}` });
        if (res.status === 200) pids.add(Number(res.headers['x-pid']));
        else failures.push(String(res.status));
      } catch (err) {
        failures.push(String(err));
      }
    }
    expect(failures).toEqual([]);
    expect(pids.size).toBeGreaterThanOrEqual(4);
    child.kill('SIGTERM');
    expect(await new Promise((r) => child.once('exit', r))).toBe(0);
  });
});
