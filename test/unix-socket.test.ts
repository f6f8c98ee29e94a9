// Unix socket ownership (src/server/unix-socket.ts): the socket is created with the
// asked mode from its first moment (bound under a narrowed umask), and the
// umask is restored right after the bind.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { serve, type ScgiServer } from '../src/index.ts';
import { tempDir } from './helpers.ts';

const dir = tempDir();
afterAll(() => dir.cleanup());
const running: ScgiServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

describe('unix socket ownership', () => {
  it('the socket has socketMode at bind time, before any chmod; the umask is restored after', async () => {
    const path = join(dir.path, 'mode.sock');
    const umaskBefore = process.umask();
    let modeAtBind = -1;
    let umaskAtBind = -1;
    const server = await serve(() => {}, {
      address: path,
      socketMode: 0o600,
      handleSignals: false,
      listen: (s, options) => {
        s.listen(options); // binds synchronously
        modeAtBind = lstatSync(path).mode & 0o777;
        umaskAtBind = process.umask();
      },
    });
    running.push(server);
    expect(modeAtBind).toBe(0o600);
    expect(umaskAtBind).toBe(0o177);
    expect(process.umask()).toBe(umaskBefore);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
  });
});
