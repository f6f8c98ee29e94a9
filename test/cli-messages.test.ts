// `scgi` messages, exit codes and `scgi bench` (issue 12 items 8 and 9),
// each through the CLI process.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve, type ScgiServer } from '../src/index.ts';
import { request } from '../src/client/request.ts';
import { tempDir } from './helpers.ts';
import { CLI, ROOT, serveCli, trackChild } from './cli-process.ts';

const dir = tempDir('scgi-cli-msg-');
afterAll(() => dir.cleanup());

/** Async: a server in this process must keep answering while the CLI runs. */
function runAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    child.once('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

function run(args: string[], opts: { timeout?: number } = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: opts.timeout ?? 20_000 });
}

/** Run `cmd` under a pseudo-terminal (util-linux `script`), return what it printed. */

describe('usage errors exit 2 with a clear message (item 9)', () => {
  const serveArgs = ['serve', 'examples/hello.js', '--address', join(dir.path, 'never.sock')];
  for (const [args, message] of [
    [['--port', '99999'], /--port must be a whole number from 0 to 65535, got "99999"/],
    [['--parallelism', '5000'], /--parallelism must be a whole number from 1 to 1024, got "5000"/],
    [['--request-timeout', '99999999999999999999'], /--request-timeout must be a whole number from 0 to 2147483647, got "99999999999999999999"/],
    [['--request-timeout', '2147483648'], /--request-timeout must be a whole number from 0 to 2147483647, got "2147483648"/],
    [['--header-timeout', '-5'], /--header-timeout must be a whole number >= 0, got "-5"/],
    [['--http', 'foo:99999'], /--http takes host:port/],
    [['--http', '/tmp/x.sock'], /--http takes host:port/],
    [['--socket-mode', '999'], /--socket-mode must be octal/],
  ] as const) {
    it(`serve ${args.join(' ')}`, () => {
      const r = run([...serveArgs, ...args]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/ambiguous|rounded|e\+/);
    });
  }

  it('--port 99999 with an address of its own is refused too (no silent exit 1)', () => {
    const r = run(['serve', 'examples/hello.js', '--address', '127.0.0.1', '--port', '99999']);
    expect(r.status).toBe(2);
  });

  it('request -d @/nonexistent: exit 2, says the file, no "nothing listens" hint', () => {
    const r = run(['request', join(dir.path, 'nope.sock'), '/', '-d', '@/nonexistent/body']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/-d @\/nonexistent\/body: cannot read \/nonexistent\/body: ENOENT/);
    expect(r.stderr).not.toMatch(/nothing listens/);
  });
});

describe('serve banner and warnings (item 9)', () => {
  it('--socket-group G: the hint does not tell to pass --socket-group again', async () => {
    const sock = join(dir.path, 'grp.sock');
    const { child, out } = await serveCli(['examples/hello.js', '--address', sock, '--socket-group', 'nogroup'], /Try it/);
    expect(out()).toContain('group nogroup');
    expect(out()).not.toMatch(/use --socket-group/);
    expect(out()).toMatch(/worker user is in group nogroup/);
    child.kill('SIGTERM');
  });

  it('--socket-mode 0777 warns (docs/security.md) and still serves', async () => {
    const sock = join(dir.path, 'wide.sock');
    const { child, out } = await serveCli(['examples/hello.js', '--address', sock, '--socket-mode', '0777'], /Try it/);
    expect(out()).toMatch(/warning: --socket-mode 0777 lets every local user connect/);
    expect((await request(sock, { uri: '/' })).status).toBe(200);
    child.kill('SIGTERM');
  });

  it('660 gives no warning', async () => {
    const sock = join(dir.path, 'narrow.sock');
    const { child, out } = await serveCli(['examples/hello.js', '--address', sock, '--socket-mode', '660'], /Try it/);
    expect(out()).not.toMatch(/warning/);
    child.kill('SIGTERM');
  });

  /** Bind a unix socket in python, pass it as fd 3 with LISTEN_FDS/LISTEN_PID, exec `cmd`. */
  function withSystemdUnixSocket(sock: string, cmd: string[], env: Record<string, string> = {}): ChildProcess {
    const child = spawn(
      'python3',
      [
        '-c',
        `import socket,os,sys
s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(),3); os.set_inheritable(3,True)
os.environ['LISTEN_FDS']='1'; os.environ['LISTEN_PID']=str(os.getpid())
os.execvp(sys.argv[2], sys.argv[2:])`,
        sock,
        ...cmd,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
    );
    trackChild(child);
    return child;
  }

  async function output(child: ChildProcess, until: RegExp): Promise<string> {
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', () => (until.test(out) ? resolve() : undefined));
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    return out;
  }

  it('--socket systemd on a unix socket: the banner names the socket and the scgi_pass, not "(not listening)"', async () => {
    const sock = join(dir.path, 'sd.sock');
    const child = withSystemdUnixSocket(sock, [process.execPath, CLI, 'serve', 'examples/hello.js', '--socket', 'systemd']);
    const out = await output(child, /scgi_pass/);
    expect(out).not.toMatch(/not listening/);
    expect(out).toContain(`on ${sock} (passed by systemd, fd 3)`);
    expect(out).toContain(`scgi_pass unix:${sock};`);
    expect((await request(sock, { uri: '/sd' })).body.toString()).toMatch(/GET \/sd/);
    child.kill('SIGTERM');
  });

  it('examples/systemd/server.js says where it listens, never "null"', async () => {
    const sock = join(dir.path, 'sd2.sock');
    const child = withSystemdUnixSocket(sock, [process.execPath, 'examples/systemd/server.js'], {
      SCGI_APP: new URL('../examples/hello.js', import.meta.url).href,
    });
    const out = await output(child, /listening/);
    expect(out).not.toMatch(/null/);
    expect(out).toMatch(/socket passed by systemd/);
    expect((await request(sock, { uri: '/' })).status).toBe(200);
    child.kill('SIGTERM');
  });
});

describe('scgi bench (item 8)', () => {
  let server: ScgiServer;
  const sock = join(dir.path, 'bench.sock');
  const seen: { method: string; body: string; type: string; token: string }[] = [];
  afterAll(async () => {
    await server?.close();
  });

  it('-X, -d @file and -H reach the app; bytes/s is reported', async () => {
    server = await serve(
      async (headers, client) => {
        let body = '';
        for await (const c of client) body += c;
        seen.push({ method: headers.get('REQUEST_METHOD')!, body, type: headers.get('CONTENT_TYPE') ?? '', token: headers.get('HTTP_X_TOKEN') ?? '' });
        client.writeHead(200, { 'Content-Type': 'text/xml' });
        client.end('<ok/>');
      },
      { address: sock, handleSignals: false },
    );
    const file = join(dir.path, 'call.xml');
    writeFileSync(file, '<methodCall><methodName>system.listMethods</methodName></methodCall>');
    const r = await runAsync([
      'bench',
      sock,
      '/RPC2',
      '-n',
      '20',
      '-c',
      '2',
      '-X',
      'POST',
      '-d',
      `@${file}`,
      '-H',
      'Content-Type: text/xml',
      '-H',
      'X-Token: t1',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^20 responses, 0 errors/);
    expect(r.stdout).toMatch(/body bytes\/s: [\d.]+ (B|KiB|MiB)\/s \(100 B in all\)/);
    expect(seen).toHaveLength(20);
    for (const s of seen)
      expect(s).toEqual({ method: 'POST', body: '<methodCall><methodName>system.listMethods</methodName></methodCall>', type: 'text/xml', token: 't1' });
    // not a terminal: no progress line
    expect(r.stderr).not.toMatch(/req\/s/);
  });

  it('a dead socket: errors counted by reason, no NaN, exit 1', () => {
    const r = run(['bench', join(dir.path, 'dead.sock'), '/', '-n', '10', '-c', '2']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^0 responses, 10 errors/);
    expect(r.stdout).toMatch(/errors: ENOENT×10/);
    expect(r.stdout).toMatch(/latency ms: - \(no response\)/);
    expect(r.stdout).not.toMatch(/NaN/);
    expect(r.stderr).toMatch(/nothing listens on .*dead\.sock/);
  });

  it('on a terminal: a progress line while it runs', async () => {
    const slow = join(dir.path, 'slow.sock');
    const s = await serve(
      (_h, client) => {
        setTimeout(() => client.end('Status: 200 OK\r\n\r\nok'), 60);
      },
      { address: slow, handleSignals: false },
    );
    try {
      const r = await new Promise<string>((resolve) => {
        const cmd = [process.execPath, CLI, 'bench', slow, '/', '-n', '40', '-c', '1', '-t', '20'].map((a) => `'${a}'`).join(' ');
        const child = spawn('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        trackChild(child);
        let out = '';
        child.stdout!.on('data', (c) => (out += c));
        child.once('exit', () => resolve(out));
      });
      expect(r).toMatch(/\r\d+ responses, 0 errors, \d+ req\/s, \d+ s/);
      expect(r).toMatch(/40 responses, 0 errors in/);
    } finally {
      await s.close();
    }
  });
});
