// The listen queue depth (src/status/listen-queue.ts): connections the
// kernel accepted into a listening socket that nobody has taken yet, over a
// unix socket (sock_diag through the addon) and TCP (/proc/net/tcp).
import { closeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parserInfo } from '../src/parser/index.ts';
import { listenQueue, tcpQueueFrom, unixSocketInode } from '../src/status/listen-queue.ts';
import { listenSocket, transportAddon } from '../src/transport/native-engine.ts';
import { tempDir, waitFor } from './helpers.ts';

const linux = process.platform === 'linux' && transportAddon() !== null;
const clients: Socket[] = [];
const fds: number[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  for (const fd of fds.splice(0)) closeSync(fd);
});

function connectAll(target: { path: string } | { host: string; port: number }, n: number): Promise<void> {
  return Promise.all(
    Array.from({ length: n }, () => {
      const c = connect(target as never);
      clients.push(c);
      return new Promise<void>((resolve, reject) => {
        c.once('connect', resolve);
        c.once('error', reject);
      });
    }),
  ).then(() => undefined);
}

describe.skipIf(!linux)('listen queue', () => {
  it('a unix socket nobody accepts on: the connections waiting (sock_diag), 0 before', async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'q.sock');
      const [fd] = listenSocket(path, -1, 16);
      fds.push(fd);
      expect(unixSocketInode(path)).toBeGreaterThan(0);
      if (parserInfo.forced === 'js') {
        // SCGI_PARSER=js promises not to touch the addon: the depth is unknown.
        expect(listenQueue(path)).toBeNull();
        return;
      }
      expect(listenQueue(path)).toBe(0);
      await connectAll({ path }, 3);
      expect(listenQueue(path)).toBe(3);
    } finally {
      dir.cleanup();
    }
  });

  it('a TCP socket nobody accepts on: its rx_queue', async () => {
    const [fd, port] = listenSocket('127.0.0.1', 0, 16);
    fds.push(fd);
    expect(listenQueue({ address: '127.0.0.1', family: 'IPv4', port })).toBe(0);
    await connectAll({ host: '127.0.0.1', port }, 4);
    // The handshake completes in the kernel; the queue counts it right after.
    await waitFor(() => listenQueue({ address: '127.0.0.1', family: 'IPv4', port }) === 4, 2000);
  });

  it('an address nothing listens on: null', () => {
    expect(listenQueue('/nonexistent/scgi.sock')).toBeNull();
    expect(listenQueue(null)).toBeNull();
  });
});

describe('listen queue parsing', () => {
  it('/proc/net/tcp: the listening row of the port (st 0A), its rx_queue in hex', () => {
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1964 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
      '   1: 0100007F:1964 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0',
      '   2: 0100007F:1965 00000000:0000 0A 00000000:00000007 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0',
    ].join('\n');
    expect(tcpQueueFrom(table, 0x1964)).toBe(5);
    expect(tcpQueueFrom(table, 0x1966)).toBeNull();
  });

  it('/proc/net/unix: the listening socket (flag __SO_ACCEPTCON) at the path', () => {
    const table = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '0000000000000000: 00000003 00000000 00000000 0001 03 111 /run/app.sock',
      '0000000000000000: 00000002 00000000 00010000 0001 01 222 /run/app.sock',
    ].join('\n');
    expect(unixSocketInode('/run/app.sock', table)).toBe(222);
    expect(unixSocketInode('/run/other.sock', table)).toBeNull();
  });
});
