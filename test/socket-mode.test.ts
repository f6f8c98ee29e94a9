// The unix socket's mode from the moment it exists, not only after the chmod
// that follows: between bind() and chmod() a front (or another local user)
// could already connect to a socket the umask made wider. The bind is
// synchronous inside net.Server#listen, so a listen() that stats the path as
// soon as it returns sees the mode the file was created with. The process
// umask is 0 here, so a bind not done under a narrowed umask makes 0o777.
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { createServer, type ListenOptions, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ScgiServer, serve } from '../src/index.ts';
import { tempDir } from './helpers.ts';

const dir = tempDir('scgi-mode-');
afterAll(() => dir.cleanup());
let server: ScgiServer | null = null;
let savedUmask = 0;
beforeEach(() => {
  savedUmask = process.umask(0);
});
afterEach(async () => {
  process.umask(savedUmask);
  await server?.close();
  server = null;
});

const hello = (_h: unknown, client: { end(s: string): void }) => client.end('Status: 200 OK\r\n\r\nhi');

/** Wrap `server.listen` to record the socket file's mode right after the bind. */
function recordBind(s: Server, path: string): number[] {
  const seen: number[] = [];
  const listen = s.listen.bind(s) as (...args: unknown[]) => Server;
  s.listen = ((...args: unknown[]) => {
    const r = listen(...args);
    seen.push(statSync(path).mode & 0o777);
    return r;
  }) as typeof s.listen;
  return seen;
}

let seq = 0;
describe('unix socket mode at bind time', () => {
  for (const socketMode of [undefined, 0o600, 0o666]) {
    const want = socketMode ?? 0o660;
    it(`socketMode ${socketMode === undefined ? 'default' : socketMode.toString(8)}: the file is created ${want.toString(8)}, and the umask is restored after the bind`, async () => {
      const path = join(dir.path, `m${seq++}`);
      let seen: number[] = [];
      server = await serve(hello, {
        address: path,
        handleSignals: false,
        ...(socketMode === undefined ? {} : { socketMode }),
        createServer: (onConnection) => {
          const s = createServer({ allowHalfOpen: true }, onConnection);
          seen = recordBind(s, path);
          return s;
        },
      });
      expect(seen.map((m) => m.toString(8))).toEqual([want.toString(8)]);
      expect(process.umask()).toBe(0);
      expect((statSync(path).mode & 0o777).toString(8)).toBe(want.toString(8));
    });
  }

  it('with a listen hook: the hook binds under the narrowed umask too', async () => {
    const path = join(dir.path, `m${seq++}`);
    const modes: number[] = [];
    server = await serve(hello, {
      address: path,
      handleSignals: false,
      socketMode: 0o640,
      listen: (s: Server, options: ListenOptions) =>
        new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(options, () => resolve());
          modes.push(statSync(path).mode & 0o777);
        }),
    });
    expect(modes.map((m) => m.toString(8))).toEqual(['640']);
    expect(process.umask()).toBe(0);
    expect((statSync(path).mode & 0o777).toString(8)).toBe('640');
  });

  it('parallelism 2: the primary binds the shared socket under the narrowed umask, the workers run under the process umask', async () => {
    const path = join(dir.path, `m${seq++}`);
    const app = fileURLToPath(new URL('./apps/cluster-socket-mode.mjs', import.meta.url));
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [app, path, '640'], { timeout: 30_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const [primary] = lines.filter((l) => 'atBind' in l);
    // net: node:cluster's bind in the primary is observed, and the primary
    // claims the file as each worker listens; native: the primary binds
    // through the addon (not observable) and claims once, right after.
    const net = primary.transport === 'net';
    expect(primary).toEqual({ atBind: net ? ['640'] : [], atClaim: net ? ['640', '640'] : ['640'], after: '640', umask: 0, transport: primary.transport });
    // The workers run the app under the process's own umask, not the narrowed one used for the bind.
    expect(lines.filter((l) => 'workerUmask' in l)).toEqual([{ workerUmask: 0 }, { workerUmask: 0 }]);
  });
});
