// What inject() and scgi/client's request() reject with: an ScgiError whose
// code says which failure it was (docs/errors.md), never a bare Error.
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { request } from '../src/client/request.ts';
import { type Handler, inject, ScgiError } from '../src/index.ts';
import { tempDir } from './helpers.ts';

const hello: Handler = (_headers, client) => client.end('Status: 200 OK\r\n\r\nhi');

async function rejection(p: Promise<unknown>): Promise<ScgiError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ScgiError);
  return err as ScgiError;
}

describe('inject rejects with an ScgiError', () => {
  it('a request the server refuses: the code it was refused with', async () => {
    expect((await rejection(inject(hello, { uri: '/x' }, { maxHeaderSize: 10 }))).code).toBe('ERR_SCGI_HEADER_TOO_LARGE');
    expect((await rejection(inject(hello, { headers: { A: '1', B: '2', C: '3' } }, { maxHeadersCount: 3 }))).code).toBe('ERR_SCGI_TOO_MANY_HEADERS');
  });

  it('a handler that closes without answering: ERR_SCGI_NO_RESPONSE', async () => {
    const err = await rejection(inject((_h, client) => client.destroy()));
    expect(err.code).toBe('ERR_SCGI_NO_RESPONSE');
  });

  it('a handler that writes something that is not a CGI response: ERR_SCGI_BAD_RESPONSE', async () => {
    expect((await rejection(inject((_h, client) => client.end('no blank line')))).code).toBe('ERR_SCGI_BAD_RESPONSE');
    expect((await rejection(inject((_h, client) => client.end('not a field\r\n\r\nbody')))).code).toBe('ERR_SCGI_BAD_RESPONSE');
    expect((await rejection(inject((_h, client) => client.end('Status: abc\r\n\r\n')))).code).toBe('ERR_SCGI_BAD_RESPONSE');
  });
});

describe('scgi/client request() over a socket', () => {
  const dir = tempDir('scgi-client-errors-');
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
    dir.cleanup();
  });

  /** A raw SCGI "server" that answers every connection with `reply` (nothing: close at once) and closes. */
  async function raw(reply: string, name: string): Promise<string> {
    const path = join(dir.path, name);
    const s = createServer((socket) => {
      socket.on('data', () => {});
      socket.on('error', () => {});
      socket.end(reply);
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(path, r));
    return path;
  }

  it('a server that closes without a byte: ERR_SCGI_NO_RESPONSE', async () => {
    expect((await rejection(request(await raw('', 'empty')))).code).toBe('ERR_SCGI_NO_RESPONSE');
  });

  it('a malformed response: ERR_SCGI_BAD_RESPONSE', async () => {
    expect((await rejection(request(await raw('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', 'bad')))).code).toBe('ERR_SCGI_BAD_RESPONSE');
  });
});
