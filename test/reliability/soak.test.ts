// A small soak for CI (bench/soak.ts is the 1M-request one): 20k requests
// through the SCGI client against the server in a child process, concurrency
// 32, sampled at 10k (after warm-up) and 20k with nothing in flight.
// Margins: heap after gc grows < 3 MB (a leaked Connection/socket/ScgiClient is
// over 1 KB, so 10k leaked requests would be well over 10 MB); RSS grows < 15 %
// (RSS includes allocator slack; it settles during the warm-up); open fds equal.
// The child runs with a fixed young generation (semi-space 16 MB): V8 grows it
// in steps as allocation goes on, which shows as RSS steps at a point that
// depends on how much the transport allocates per request (the native
// transport allocates less, so its steps came after 10k; with the size fixed,
// RSS is flat from 5k on for both).
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from '../../src/client/request.ts';
import { tempDir } from '../helpers.ts';
import { fdCount, rssOf, spyOnProcessErrors } from './util.ts';

spyOnProcessErrors();
const APP = fileURLToPath(new URL('../apps/reliability-app.mjs', import.meta.url));
const dir = tempDir('scgi-soak-');
afterAll(() => dir.cleanup());

describe('soak', () => {
  it('20k requests: no heap, RSS or fd growth beyond the documented margins, none failed', async () => {
    const sock = join(dir.path, 'soak.sock');
    const child = spawn(process.execPath, ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16', APP], {
      env: { ...process.env, SCGI_TEST_OPTIONS: JSON.stringify({ address: sock }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const { pid } = await new Promise<{ pid: number }>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const msg = JSON.parse(line);
          if ('ready' in msg) resolve(msg);
        });
        child.once('exit', (code) => reject(new Error(`app exited ${code}`)));
      });
      let failures = 0;
      let n = 0;
      const round = async (count: number) => {
        let issued = 0;
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            while (issued < count) {
              const i = n + issued++;
              try {
                const res = await request(sock, { uri: `/soak?i=${i}`, body: i % 10 === 0 ? 'x'.repeat(100) : undefined, timeout: 10_000 });
                if (res.status !== 200 || res.body.toString() !== `pid ${pid} /soak?i=${i}\n`) failures++;
              } catch {
                failures++;
              }
            }
          }),
        );
        n += count;
      };
      // Open fds once the server has closed what it just answered (this
      // sample's own /__mem connection included): a connection the client
      // is done with may still be closing on the server for a loop turn.
      const settledFds = async () => {
        let last = fdCount(pid);
        for (let i = 0; i < 40; i++) {
          await new Promise((r) => setTimeout(r, 50));
          const now = fdCount(pid);
          if (now === last) return now;
          last = now;
        }
        return last;
      };
      const sample = async () => {
        const mem = JSON.parse((await request(sock, { uri: '/__mem' })).body.toString());
        expect(mem.gc).toBe(true);
        return { heap: mem.heapUsed as number, rss: rssOf(pid), fds: await settledFds() };
      };
      for (let k = 0; k < 2; k++) await round(5000); // warm-up: RSS settles by ~10k
      const at10k = await sample();
      for (let k = 0; k < 2; k++) await round(5000);
      const at20k = await sample();
      console.log(`soak 20k: heap ${at10k.heap} → ${at20k.heap} B, RSS ${at10k.rss} → ${at20k.rss} B, fds ${at10k.fds} → ${at20k.fds}`);
      expect(failures).toBe(0);
      expect(at20k.heap - at10k.heap).toBeLessThan(3 * 1024 * 1024);
      expect(at20k.rss).toBeLessThan(at10k.rss * 1.15);
      expect(at20k.fds).toBeLessThanOrEqual(at10k.fds);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  }, 120_000);
});
