/**
 * How a connection ends after its response, on both transports:
 *
 * - the front may still be sending the request body the handler did not
 *   read (nginx with `scgi_request_buffering off`): those bytes, arriving
 *   AFTER the response was written, must be read and discarded, not answered
 *   with EPIPE or a reset (nginx and Apache truncate a response whose
 *   connection resets);
 * - the whole request was read: nothing more can come from a front that
 *   follows the protocol, so the server closes at once instead of waiting
 *   for the front's close (one shutdown, one read and one wake-up fewer per
 *   request), and the front still gets the whole response and a clean EOF.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serve } from '../src/index.ts';
import { block, netstring, tempDir, TRANSPORTS, waitFor } from './helpers.ts';

const RESPONSE = 'Status: 200 OK\r\nContent-Length: 2\r\n\r\nok';

function header(contentLength: number): Buffer {
  return netstring(
    block([
      ['CONTENT_LENGTH', String(contentLength)],
      ['SCGI', '1'],
    ]),
  );
}

describe.each(TRANSPORTS)('%s transport: the end of a connection after its response', (transport) => {
  it('drains the unread body the front sends after the response: no EPIPE, no reset', async () => {
    const dir = tempDir();
    const address = join(dir.path, 'drain.sock');
    const server = await serve((_h, client) => client.end(RESPONSE), { address, transport, handleSignals: false });
    try {
      // Half of a 10-byte body; the other half only once the response and the
      // server's FIN have arrived, as nginx streaming an unbuffered body does.
      const result = await new Promise<{ data: string; error: string | null }>((resolve) => {
        const sock = connect({ path: address, allowHalfOpen: true });
        const chunks: Buffer[] = [];
        let error: string | null = null;
        sock.on('data', (c) => chunks.push(c));
        sock.on('error', (e: NodeJS.ErrnoException) => {
          error = e.code ?? e.message;
        });
        sock.on('end', () => {
          sock.write('world', () => {
            setTimeout(() => sock.write('', () => sock.end()), 20);
          });
        });
        sock.on('close', () => resolve({ data: Buffer.concat(chunks).toString(), error }));
        sock.write(Buffer.concat([header(10), Buffer.from('hello')]));
      });
      expect(result.data).toBe(RESPONSE);
      expect(result.error).toBe(null);
    } finally {
      await server.close();
      dir.cleanup();
    }
  });

  it('closes at once when the whole request was read, without waiting for the front (drainTimeout far away)', async () => {
    const dir = tempDir();
    const address = join(dir.path, 'close.sock');
    const server = await serve((_h, client) => client.end(RESPONSE), { address, transport, handleSignals: false, drainTimeout: 600_000 });
    const open: Socket[] = [];
    try {
      for (const body of ['', 'hello']) {
        const sock = connect({ path: address, allowHalfOpen: true });
        open.push(sock);
        const chunks: Buffer[] = [];
        const ended = new Promise<void>((resolve, reject) => {
          sock.on('data', (c) => chunks.push(c));
          sock.on('end', resolve);
          sock.on('error', reject);
        });
        sock.write(Buffer.concat([header(body.length), Buffer.from(body)]));
        await ended;
        expect(Buffer.concat(chunks).toString()).toBe(RESPONSE);
        // The front keeps its side open; the server has let the connection go
        // all the same (with a drain it would stay open for drainTimeout).
        await waitFor(async () => (await server.getConnections()) === 0);
        expect(sock.destroyed).toBe(false);
      }
      expect(server.stats.requests).toBe(2);
    } finally {
      for (const s of open) s.destroy();
      await server.close();
      dir.cleanup();
    }
  });
});
