// examples/systemd: server.js serves an app on a unix socket with the socket
// group the units ask for, and (where systemd-analyze exists) the units pass
// `systemd-analyze verify`. Socket activation itself (socket: 'systemd') is
// tested in test/process.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { request } from '../../src/client/request.ts';
import { tempDir, waitFor } from '../helpers.ts';
import { EXAMPLES } from './matrix.ts';

const dir = tempDir('scgi-systemd-');
afterAll(() => dir.cleanup());

describe('examples/systemd', () => {
  it('server.js listens on the unix socket, mode 0660 and the configured group, and serves', async () => {
    chmodSync(dir.path, 0o711);
    const sock = join(dir.path, 'app.sock');
    const child = spawn(process.execPath, [join(EXAMPLES, 'systemd/server.js')], {
      env: { ...process.env, SCGI_APP: join(EXAMPLES, 'hello.js'), SCGI_ADDRESS: sock, SCGI_SOCKET_GROUP: String(process.getgid!()) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      // The file exists from bind(); connections are taken from listen() on.
      const accepts = () =>
        new Promise<boolean>((resolve) => {
          const c = connect(sock, () => {
            c.destroy();
            resolve(true);
          });
          c.on('error', () => resolve(false));
        });
      await waitFor(async () => existsSync(sock) && (await accepts()), 10_000);
      const st = statSync(sock);
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.gid).toBe(process.getgid!());
      const res = await request(sock, { uri: '/from-systemd' });
      expect(res.status).toBe(200);
      expect(res.body.toString()).toContain('GET /from-systemd');
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0); // graceful stop on SIGTERM, as systemd stops it
    }
    expect(existsSync(sock)).toBe(false);
  });

  it('the units pass systemd-analyze verify', () => {
    const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
    if (analyze === undefined) return; // not a systemd machine: nothing to check the syntax with
    const out = execFileSync(analyze, ['verify', '--man=no', join(EXAMPLES, 'systemd/scgi-app.service'), join(EXAMPLES, 'systemd/scgi-app.socket')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out).toBe('');
  });
});
