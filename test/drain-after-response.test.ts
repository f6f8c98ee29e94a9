/**
 * Bytes the front sends after the request (an unread body, or bytes past
 * CONTENT_LENGTH) that arrive AFTER the response was written must be read and
 * discarded, not answered with a reset: nginx and Apache truncate a response
 * whose connection resets. Both transports.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serve } from '../src/index.ts';
import { transportAddon } from '../src/transport/native-engine.ts';
import { block, netstring, tempDir } from './helpers.ts';

const transports: ('net' | 'native')[] = ['net'];
if (process.platform === 'linux' && transportAddon() !== null) transports.push('native');

describe.each(transports)('%s transport: bytes that arrive after the response', (transport) => {
  it('are drained: the front can still write, then closes, and sees no EPIPE or reset', async () => {
    const dir = tempDir();
    const address = join(dir.path, 'drain.sock');
    const server = await serve((_h, client) => client.end('Status: 200 OK\r\nContent-Length: 2\r\n\r\nok'), {
      address,
      transport,
      handleSignals: false,
    });
    try {
      // The whole request (5-byte body) in one write; more bytes only once the
      // response and the server's FIN have arrived, as a slow front might.
      const request = Buffer.concat([
        netstring(
          block([
            ['CONTENT_LENGTH', '5'],
            ['SCGI', '1'],
          ]),
        ),
        Buffer.from('hello'),
      ]);
      const result = await new Promise<{ data: string; error: string | null }>((resolve) => {
        const sock = connect(address);
        const chunks: Buffer[] = [];
        let error: string | null = null;
        sock.on('data', (c) => chunks.push(c));
        sock.on('error', (e: NodeJS.ErrnoException) => {
          error = e.code ?? e.message;
        });
        sock.on('end', () => {
          // Our side is still open: a front that sends more now must not be reset.
          sock.write('extra bytes after the response', () => {
            setTimeout(() => sock.write('and more', () => sock.end()), 20);
          });
        });
        sock.on('close', () => resolve({ data: Buffer.concat(chunks).toString(), error }));
        sock.write(request);
      });
      expect(result.data).toBe('Status: 200 OK\r\nContent-Length: 2\r\n\r\nok');
      expect(result.error).toBe(null);
    } finally {
      await server.close();
      dir.cleanup();
    }
  });
});
