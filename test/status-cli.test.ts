// `scgi serve --status/--access-log/--slow-request-threshold` and `scgi
// status ADDRESS [--json]`, as processes from the built package (dist/cli/main.js).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, ROOT, runCli, trackChild } from './cli-process.ts';
import { scgiRequest, tempDir, TRANSPORTS, waitFor } from './helpers.ts';

let dir: { path: string; cleanup(): void } | null = null;
afterEach(() => {
  dir?.cleanup();
  dir = null;
});

function serveApp(args: string[], transport: string) {
  const child = trackChild(
    spawn(process.execPath, [CLI, 'serve', join(ROOT, 'examples/hello.js'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SCGI_TRANSPORT: transport },
    }),
  );
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  return { child, out: () => out };
}

describe.each(TRANSPORTS)('scgi status (%s)', (transport) => {
  it('a live server: the workers as a table, --json the document; its access log on stdout', async () => {
    dir = tempDir();
    const address = join(dir.path, 'app.sock');
    const status = join(dir.path, 'status.sock');
    const app = serveApp(['--address', address, '--status', status, '--access-log'], transport);
    await waitFor(() => app.out().includes('Status: scgi status'), 10_000);
    for (const uri of ['/a', '/b', '/c']) expect((await scgiRequest({ path: address }, { uri })).status).toBe(200);
    await waitFor(() => (app.out().match(/"GET \/[abc] HTTP\/1\.1" 200 \d+ \d+\.\d{3} \d+/g) ?? []).length === 3, 5000);

    const json = runCli(['status', status, '--json']);
    expect(json.status).toBe(0);
    const doc = JSON.parse(json.stdout);
    expect(doc.totals.requests).toBe(3);
    expect(doc.server).toMatchObject({ pid: app.child.pid, transport, parallelism: 1 });
    expect(doc.workers).toHaveLength(1);

    const table = runCli(['status', status]);
    expect(table.status).toBe(0);
    expect(table.stdout).toContain(`pid ${app.child.pid}`);
    expect(table.stdout).toMatch(/requests 3, in progress 0/);
    expect(table.stdout).toMatch(/^pid +state +requests +in progress +rss +heap +elu +heartbeat +uptime +oldest request$/m);
    expect(table.stdout).toMatch(new RegExp(`^${app.child.pid} +idle +3 +0 +`, 'm'));
    app.child.kill('SIGTERM');
    await new Promise((r) => app.child.once('exit', r));
  });
});

describe('scgi status, nothing there', () => {
  it('a dead address: exit 1 and a message saying nothing answers', () => {
    dir = tempDir();
    const r = runCli(['status', join(dir.path, 'none.sock')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^scgi: no status from .*none\.sock: ENOENT \(is the server running with statusAddress \/ --status .*none\.sock\?\)\n$/);
    const tcp = runCli(['status', '127.0.0.1:1']);
    expect(tcp.status).toBe(1);
    expect(tcp.stderr).toMatch(/no status from 127\.0\.0\.1:1: ECONNREFUSED/);
  });

  it('usage: one ADDRESS', () => {
    expect(runCli(['status']).status).toBe(2);
    expect(runCli(['serve', 'x.js', '--slow-request-threshold', 'soon']).status).toBe(2);
  });
});
