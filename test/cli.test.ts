// The `scgi` command, run as a process from the built package.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { serve } from '../src/index.ts';
import { freePort } from './fronts/nginx.ts';
import { tempDir } from './helpers.ts';
import { runCli as run, serveCli, trackChild, ROOT, CLI } from './cli-process.ts';
import { parserInfo } from '../src/parser/index.ts';
import { transportAddon } from '../src/transport/native-engine.ts';

const dir = tempDir('scgi-cli-');
afterAll(() => dir.cleanup());

describe('scgi CLI', () => {
  it('--help lists every serve option with its default', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    for (const opt of [
      '--address',
      '--port',
      '--parallelism',
      '--http',
      '--socket-mode',
      '--socket-group',
      '--strict',
      '--max-body-size',
      '--header-timeout',
      '--request-timeout',
    ]) {
      expect(r.stdout).toContain(opt);
    }
    expect(r.stdout).toMatch(/default 6500/);
  });

  it('bad usage exits 2 with a message', () => {
    const r = run(['serve', 'examples/hello.js', '--parallelism', 'lots']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--parallelism must be a whole number/);
    expect(run(['frobnicate']).status).toBe(2);
    expect(run(['serve', 'examples/hello.js', '--bogus']).status).toBe(2);
  });

  it('serve (an SCGI handler) prints where it listens and the nginx snippet; request prints like curl -i', async () => {
    const sock = join(dir.path, 'hello.sock');
    const { child, out } = await serveCli(['examples/hello.js', '--address', sock], /Try it/);
    expect(out()).toContain(`scgi_pass unix:${sock};`);
    expect(out()).toMatch(/SCGI handler \(scgiType\), parser (js|native), transport (net|native)\)/);
    // The banner names the transport in use: native by default where the addon has it.
    const nativeDefault = process.platform === 'linux' && transportAddon() !== null && parserInfo.forced !== 'js' && !process.env.SCGI_TRANSPORT;
    if (nativeDefault) expect(out()).toContain('transport native)');
    const r = run(['request', sock, '/path?q=1', '-d', 'xyz', '-H', 'X-Thing: 1']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^HTTP\/1\.1 200 OK\r\nContent-Type: text\/plain; charset=utf-8\r\nContent-Length: \d+\r\n\r\nHello from scgi!\nPOST \/path\?q=1 \(3 body bytes/,
    );
    const b = run(['bench', sock, '/', '-n', '200', '-c', '4', '-t', '5']);
    expect(b.status).toBe(0);
    expect(b.stdout).toMatch(/^200 responses, 0 errors/);
    expect(b.stdout).toMatch(/latency ms: p50 [\d.]+ {2}p90 [\d.]+ {2}p99/);
    child.kill('SIGTERM');
    expect(await new Promise((r) => child.once('exit', r))).toBe(0);
  });

  it('serve --http: the development front forwards browser requests over SCGI', async () => {
    const port = await freePort();
    const sock = join(dir.path, 'dev.sock');
    const { child } = await serveCli(['examples/hono.js', '--address', sock, '--http', `127.0.0.1:${port}`], /Development HTTP front/);
    const res = await fetch(`http://127.0.0.1:${port}/json/dev?q=1`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ hello: 'dev', q: '1' });
    const posted = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body: '{"k":true}', headers: { 'Content-Type': 'application/json' } });
    expect(posted.status).toBe(201);
    expect(await posted.json()).toEqual({ received: { k: true } });
    child.kill('SIGTERM');
  });

  it('detects Express apps and parallelism works from the CLI', async () => {
    const sock = join(dir.path, 'express.sock');
    const { child, out } = await serveCli(['examples/express.js', '--address', sock, '--parallelism', '2'], /Try it/);
    expect(out()).toMatch(/Express\/Connect app, .* with 2 workers/);
    // The banner names the workers' transport (the primary chooses it as in process, src/server/cluster.ts).
    const transport =
      process.env.SCGI_TRANSPORT === 'net' ? 'net' : process.platform === 'linux' && transportAddon() !== null && parserInfo.forced !== 'js' ? 'native' : 'net';
    expect(out()).toContain(`transport ${transport})`);
    const r = run(['request', sock, '/users/5']);
    expect(r.stdout).toContain('{"id":"5","query":{}}');
    child.kill('SIGTERM');
    expect(await new Promise((r) => child.once('exit', r))).toBe(0);
  });

  it('address in use exits 1 with a clear message, and does not touch the live socket', async () => {
    const sock = join(dir.path, 'busy.sock');
    const live = await serve((_h, c) => c.end('Status: 200 OK\r\n\r\nlive'), { address: sock, handleSignals: false });
    try {
      // async: the live server runs in this process and must keep answering
      const { execFile } = await import('node:child_process');
      const runAsync = (args: string[]) =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
          execFile(process.execPath, [CLI, ...args], { cwd: ROOT }, (err, stdout, stderr) =>
            resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
          ),
        );
      const r = await runAsync(['serve', 'examples/hello.js', '--address', sock]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/already listening on .*busy\.sock/);
      expect((await runAsync(['request', sock, '/'])).stdout).toContain('live');
    } finally {
      await live.close();
    }
  });

  it('serve --socket systemd: socket activation from the CLI', async () => {
    // python3 binds, puts the socket on fd 3 with LISTEN_FDS/LISTEN_PID and execs node (same pid)
    const child = spawn(
      'python3',
      [
        '-c',
        `import socket,os,sys
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(16)
os.dup2(s.fileno(),3); os.set_inheritable(3,True)
os.environ['LISTEN_FDS']='1'; os.environ['LISTEN_PID']=str(os.getpid())
print(s.getsockname()[1], flush=True)
os.execvp(sys.argv[1], sys.argv[1:])`,
        process.execPath,
        CLI,
        'serve',
        'examples/hello.js',
        '--socket',
        'systemd',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    trackChild(child);
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', () => (/Try it/.test(out) ? resolve() : undefined));
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const port = Number(out.split('\n')[0]);
    const { request } = await import('../src/client/request.ts');
    const res = await request(`127.0.0.1:${port}`, { uri: '/sd' });
    expect(res.body.toString()).toMatch(/GET \/sd/);
    expect(run(['serve', 'examples/hello.js', '--socket', 'nope']).status).toBe(2);
    child.kill('SIGTERM');
  });

  it('request to nothing exits 1', () => {
    const r = run(['request', join(dir.path, 'nope.sock'), '/']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/nothing listens on .*nope\.sock: is the app running/);
  });
});
