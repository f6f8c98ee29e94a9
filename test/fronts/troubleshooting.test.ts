// What each front returns to the browser, and logs, when the app is not
// well: socket missing, a stale socket file (refused), nothing on the TCP
// port (refused), the app closes without answering, the app never answers
// (the front's read timeout, set to 1 s here), EACCES on the socket. The
// table in docs/deployment.md is this test's expectations.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { serve } from '../../src/index.ts';
import { tempDir, waitFor } from '../helpers.ts';
import { asRoot, freePort } from './front.ts';
import { startFront, type FrontName, type RunningFront } from './matrix.ts';

type Case = 'socket missing' | 'stale socket' | 'tcp refused' | 'closes early' | 'times out' | 'EACCES';

interface Outcome {
  status: number;
  /** matches the lines the front added to its error log */
  log: RegExp;
}

/** Measured with nginx 1.22, Apache 2.4 and lighttpd 1.4 on Debian 12. */
const EXPECTED: Record<FrontName, Record<Case, Outcome>> = {
  nginx: {
    'socket missing': { status: 502, log: /\[crit\].*connect\(\) to unix:.* failed \(2: No such file or directory\) while connecting to upstream/ },
    'stale socket': { status: 502, log: /\[error\].*connect\(\) to unix:.* failed \(111: Connection refused\)/ },
    'tcp refused': { status: 502, log: /\[error\].*connect\(\) failed \(111: Connection refused\) while connecting to upstream/ },
    'closes early': { status: 502, log: /upstream prematurely closed connection while reading response header from upstream/ },
    'times out': { status: 504, log: /upstream timed out \(110: Connection timed out\) while reading response header/ },
    EACCES: { status: 502, log: /\[crit\].*connect\(\) to unix:.* failed \(13: Permission denied\)/ },
  },
  apache: {
    'socket missing': { status: 503, log: /\(2\)No such file or directory: AH02454: SCGI: attempt to connect to Unix domain socket .* failed[\s\S]*AH00866/ },
    'stale socket': { status: 503, log: /\(111\)Connection refused: AH02454: SCGI: attempt to connect to Unix domain socket/ },
    'tcp refused': { status: 503, log: /\(111\)Connection refused: AH00957: SCGI: attempt to connect to 127\.0\.0\.1:\d+/ },
    'closes early': { status: 500, log: /End of script output before headers[\s\S]*AH00860: error reading response headers/ },
    'times out': { status: 504, log: /Script timed out before returning headers[\s\S]*AH00860/ },
    EACCES: { status: 503, log: /\(13\)Permission denied: AH02454: SCGI: attempt to connect to Unix domain socket/ },
  },
  lighttpd: {
    'socket missing': { status: 503, log: /establishing connection failed: socket: unix:.*: No such file or directory[\s\S]*all handlers for .* are down/ },
    'stale socket': { status: 503, log: /establishing connection failed: socket: unix:.*: Connection refused/ },
    'tcp refused': { status: 503, log: /establishing connection failed: socket: tcp:127\.0\.0\.1:\d+: Connection refused/ },
    // no log line at the default log level
    'closes early': { status: 500, log: /^(?![\s\S]*establishing)/ },
    'times out': { status: 504, log: /read timeout on socket: unix:/ },
    EACCES: { status: 503, log: /establishing connection failed: socket: unix:.*: Permission denied/ },
  },
};

const TIMEOUTS: Record<FrontName, [string, string]> = {
  nginx: ['scgi_read_timeout 1s;', ''],
  apache: ['ProxyTimeout 1', ''],
  lighttpd: ['', ', "read-timeout" => 1'],
};

function listenRaw(path: string, onSocket: (s: Socket) => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(onSocket);
    server.once('error', reject);
    server.listen(path, () => {
      chmodSync(path, 0o666);
      resolve(server);
    });
  });
}

const close = (s: { close(cb?: () => void): unknown }) => new Promise<void>((r) => s.close(() => r()));

describe.each(['nginx', 'apache', 'lighttpd'] as FrontName[])('%s when the app is not well', (front) => {
  const dir = tempDir(`scgi-trouble-${front}-`);
  const sock = join(dir.path, 'app.sock');
  let http: RunningFront;
  let tcp: RunningFront;
  const logLength = { unix: 0, tcp: 0 };

  beforeAll(async () => {
    chmodSync(dir.path, 0o711); // the workers (nobody) must reach the socket
    const [extra, hostOptions] = TIMEOUTS[front];
    http = await startFront(front, join(dir.path, 'unix'), { kind: 'unix', path: sock }, extra, hostOptions);
    tcp = await startFront(front, join(dir.path, 'tcp'), { kind: 'tcp', host: '127.0.0.1', port: await freePort() }, extra, hostOptions);
  });
  afterAll(async () => {
    await http?.stop();
    await tcp?.stop();
    dir.cleanup();
  });

  async function get(which: RunningFront, c: Case): Promise<void> {
    // lighttpd disables a backend for "disable-time" (1 s, checked once a
    // second) after a failed connect, and answers 503 without trying it
    // until the log says "re-enabled": let each case start fresh
    if (front === 'lighttpd') {
      const count = (re: RegExp) => (which.errorLog().match(re) ?? []).length;
      await waitFor(() => count(/are down/g) <= count(/re-enabled/g), 5000, 100);
    }
    const key = which === http ? 'unix' : 'tcp';
    const res = await fetch(`${which.url}/case`, { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    // the log line may be written just after the response
    await new Promise((r) => setTimeout(r, 50));
    const log = which.errorLog().slice(logLength[key]);
    logLength[key] += log.length;
    if (process.env.SCGI_SHOW_TROUBLE) console.log(front, c, res.status, '\n ', log.trim().split('\n').join('\n  '));
    expect(res.status).toBe(EXPECTED[front][c].status);
    expect(log).toMatch(EXPECTED[front][c].log);
  }

  it('socket missing (app not started)', async () => {
    expect(existsSync(sock)).toBe(false);
    await get(http, 'socket missing');
  });

  it('stale socket file (app crashed: connection refused)', async () => {
    // a process that listens and is SIGKILLed leaves its socket file behind
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(sock)}, () => { require('fs').chmodSync(${JSON.stringify(sock)}, 0o666); process.kill(process.pid, 'SIGKILL') })`,
    ]);
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(sock)).toBe(true);
    try {
      await get(http, 'stale socket');
    } finally {
      rmSync(sock, { force: true });
    }
  });

  it('nothing listening on the TCP port (connection refused)', async () => {
    await get(tcp, 'tcp refused');
  });

  it('the app closes the connection without answering', async () => {
    const server = await listenRaw(sock, (s) => s.once('data', () => s.destroy()));
    try {
      await get(http, 'closes early');
    } finally {
      await close(server);
    }
  });

  it('the app never answers (front read timeout 1 s)', async () => {
    const open = new Set<Socket>();
    const server = await listenRaw(sock, (s) => {
      open.add(s);
      s.resume();
    });
    try {
      await get(http, 'times out');
    } finally {
      for (const s of open) s.destroy();
      await close(server);
    }
  });

  it('EACCES: the front cannot write to the socket', async () => {
    // as root the front's workers run as nobody and the socket is root:root
    // 0660 (no socketGroup); otherwise mode 0 denies even the owner
    const app = await serve((_h, c) => c.end('Status: 200 OK\r\n\r\n'), { address: sock, handleSignals: false, ...(asRoot ? {} : { socketMode: 0 }) });
    try {
      await get(http, 'EACCES');
      expect(app.stats.connections).toBe(0);
    } finally {
      await app.close();
    }
    await waitFor(() => !existsSync(sock));
  });
});
