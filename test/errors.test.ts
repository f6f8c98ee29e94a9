// Each failure has its own ScgiError code (docs/errors.md), with the errno
// error as `cause` where the system refused.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { readHeader, serve, ScgiError, type ScgiServer } from '../src/index.ts';
import { encodeRequest } from '../src/client/request.ts';
import { spawnApp } from './apps/spawn.ts';
import { tempDir, TRANSPORTS, waitFor } from './helpers.ts';

const dir = tempDir();
afterAll(() => dir.cleanup());
const running: ScgiServer[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(running.splice(0).map((s) => s.close()));
});

describe('listening errors', () => {
  it('a listen that fails for another reason: ERR_SCGI_LISTEN_FAILED, errno as cause', async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: bind fails with EADDRNOTAVAIL.
    const err = await serve(() => {}, { address: '192.0.2.1:0', handleSignals: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScgiError);
    expect(err).toMatchObject({ code: 'ERR_SCGI_LISTEN_FAILED', cause: { code: 'EADDRNOTAVAIL' } });
  });

  it('a given net.Server that fails to listen: ERR_SCGI_LISTEN_FAILED, errno as cause', async () => {
    const given = createServer();
    const serving = serve(() => {}, { socket: given, handleSignals: false }).catch((e: unknown) => e);
    given.listen(join(dir.path, 'no-such-dir', 's.sock'));
    const err = await serving;
    expect(err).toBeInstanceOf(ScgiError);
    expect(err).toMatchObject({ code: 'ERR_SCGI_LISTEN_FAILED' });
    expect(((err as Error).cause as NodeJS.ErrnoException).code).toMatch(/^E[A-Z]+$/); // the errno error (libuv says EACCES or ENOENT)
  });

  it("a regular file in the socket's path: ERR_SCGI_INVALID_ADDRESS on every Node version, errno as cause", async () => {
    // (Node 20 threw ENOTDIR from statSync with throwIfNoEntry: false, which
    // gave ERR_SCGI_SOCKET_FILE there and "does not exist" on Node 22+.)
    const file = join(dir.path, 'a-file');
    writeFileSync(file, '');
    const err = await serve(() => {}, { address: join(file, 'sub', 's.sock'), handleSignals: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScgiError);
    expect(err).toMatchObject({ code: 'ERR_SCGI_INVALID_ADDRESS', message: expect.stringContaining(`${file} is not a directory`), cause: { code: 'ENOTDIR' } });
  });

  it('a cluster worker that exits before listening: ERR_SCGI_WORKER_FAILED', async () => {
    const app = fileURLToPath(new URL('./apps/worker-fails.mjs', import.meta.url));
    const run = await spawnApp<{ ready: string; message: string }>([process.execPath, app], { SCGI_TEST_ADDRESS: join(dir.path, 'w.sock') }, children);
    expect(run.ready.ready).toBe('ERR_SCGI_WORKER_FAILED');
    expect(run.ready.message).toMatch(/exited \(5\) before listening/);
    expect(await run.exited).toBe(0);
  });

  for (const transport of TRANSPORTS) {
    it(`parallelism 2, a TCP port in use (${transport} workers): ERR_SCGI_ADDRESS_IN_USE, as in process`, async () => {
      const app = fileURLToPath(new URL('./apps/cluster-in-use.mjs', import.meta.url));
      const run = await spawnApp<{ ready: string; message: string }>([process.execPath, app], { SCGI_TEST_TRANSPORT: transport }, children);
      expect(run.ready).toMatchObject({ ready: 'ERR_SCGI_ADDRESS_IN_USE', message: expect.stringMatching(/address in use: 127\.0\.0\.1:\d+/) });
      expect(await run.exited).toBe(0);
    });
  }
});

describe('connection errors', () => {
  it('a write waiting for drain when the front goes away calls back with ERR_SCGI_CONNECTION_CLOSED', async () => {
    let writeError: unknown = null;
    let wrote = false;
    const server = await serve(
      (_h, client) => {
        // More than the socket buffers hold: the write waits for 'drain'.
        client.write(Buffer.alloc(32 * 1024 * 1024), (err: Error | null | undefined) => {
          wrote = true;
          writeError = err ?? null;
        });
      },
      { address: join(dir.path, 'c.sock'), handleSignals: false },
    );
    running.push(server);
    // A front that sends its request, never reads, then goes away.
    const front = connect({ path: server.address() as string });
    front.pause();
    front.write(encodeRequest({ uri: '/' }));
    await waitFor(async () => (await server.getConnections()) === 1 && server.stats.requests === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(wrote).toBe(false);
    front.destroy();
    await waitFor(() => wrote);
    expect(writeError).toBeInstanceOf(ScgiError);
    expect(writeError).toMatchObject({ code: 'ERR_SCGI_CONNECTION_CLOSED' });
  });
});

describe('one error per meaning, worded the same wherever it is made', () => {
  for (const transport of TRANSPORTS) {
    it(`ERR_SCGI_HEADER_TIMEOUT from serve() (${transport}) reads as readHeader's, with the timeout`, async () => {
      const seen: ScgiError[] = [];
      const server = await serve(() => {}, { address: join(dir.path, `ht-${transport}.sock`), transport, headerTimeout: 150, handleSignals: false });
      running.push(server);
      server.on('clientError', (err: ScgiError) => seen.push(err));
      const front = connect(join(dir.path, `ht-${transport}.sock`));
      front.on('error', () => {});
      front.write('70:CONTENT_LENGTH');
      await waitFor(() => seen.length > 0);
      front.destroy();
      const stream = new PassThrough();
      stream.write('70:CONTENT_LENGTH');
      const fromStream = await readHeader(stream, { headerTimeout: 150 }).catch((e: unknown) => e);
      stream.destroy();
      expect(seen[0]).toMatchObject({ code: 'ERR_SCGI_HEADER_TIMEOUT', message: 'no complete SCGI header within headerTimeout (150 ms)' });
      expect(fromStream).toMatchObject({ code: 'ERR_SCGI_HEADER_TIMEOUT', message: seen[0]!.message });
    });
  }
});
