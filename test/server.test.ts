import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { serve, ScgiError, readHeader, type ScgiServer, type Handler, type ServeOptions } from '../src/index.ts';
import { encodeRequest } from '../src/client/request.ts';
import { bigBody, block, exchange, fixture, netstring, scgiRequest, targetOf, tempDir, vectors, waitFor, type Target } from './helpers.ts';

const dir = tempDir();
afterAll(() => dir.cleanup());

let n = 0;
const running: ScgiServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function start(handler: Handler, options: ServeOptions = {}): Promise<{ server: ScgiServer; target: Target }> {
  const server = await serve(handler, { address: join(dir.path, `s${n++}.sock`), handleSignals: false, ...options });
  running.push(server);
  return { server, target: targetOf(server.address() as never) };
}

const hello: Handler = (headers, client) => {
  client.writeHead(200, { 'Content-Type': 'text/plain' });
  client.end(`hello ${headers.get('REQUEST_URI')}`);
};

/** Reads the body, answers with its length and sha256. */
const digest: Handler = async (_headers, client) => {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of client) {
    hash.update(chunk);
    length += chunk.length;
  }
  client.writeHead(200, { 'X-Length': String(length), 'X-Sha256': hash.digest('hex') });
  client.end();
};

describe.each([
  ['unix socket', () => ({})],
  ['127.0.0.1', () => ({ address: '127.0.0.1:0' })],
  ['[::1]', () => ({ address: '[::1]:0' })],
] as const)('serve over %s', (_what, opts) => {
  it('answers a request', async () => {
    const { target } = await start(hello, opts());
    const res = await scgiRequest(target, { uri: '/a?b=1' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain');
    expect(res.headers['content-length']).toBe('12');
    expect(res.body.toString()).toBe('hello /a?b=1');
    expect(res.error).toBe(null);
  });

  it('streams a 3 MiB body to the handler byte for byte', async () => {
    const { target } = await start(digest, opts());
    const body = bigBody();
    const res = await scgiRequest(target, { body });
    expect(res.headers['x-length']).toBe(String(body.length));
    expect(res.headers['x-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('serves many concurrent requests', async () => {
    const { target } = await start(hello, opts());
    const all = await Promise.all(Array.from({ length: 50 }, (_, i) => scgiRequest(target, { uri: `/${i}` })));
    for (const [i, r] of all.entries()) expect(r.body.toString()).toBe(`hello /${i}`);
  });
});

describe('address rules', () => {
  it('port alone listens on 127.0.0.1', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const server = await serve(hello, { port, handleSignals: false });
    running.push(server);
    expect(server.address()).toMatchObject({ address: '127.0.0.1', port });
  });

  it('IPv6 forms: [::1]:port, and ::1 with the port option', async () => {
    const a = await serve(hello, { address: '[::1]:0', handleSignals: false });
    running.push(a);
    expect(a.address()).toMatchObject({ address: '::1', family: 'IPv6' });
    const b = await serve(hello, { address: '::1', port: 0, handleSignals: false });
    running.push(b);
    expect(b.address()).toMatchObject({ address: '::1' });
  });

  it('accepts net.ListenOptions', async () => {
    const s = await serve(hello, { address: { host: '127.0.0.1', port: 0 }, handleSignals: false });
    running.push(s);
    const res = await scgiRequest(targetOf(s.address() as never), {});
    expect(res.status).toBe(200);
  });

  it('rejects a bad address and unknown options', async () => {
    await expect(serve(hello, { address: '[nope]:1' })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_ADDRESS' });
    await expect(serve(hello, { address: 'host:99999' })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_ADDRESS' });
    await expect(serve(hello, { adress: '/x' } as never)).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_OPTION' });
    await expect(serve(hello, { maxHeaderSize: -1 })).rejects.toBeInstanceOf(ScgiError);
  });
});

describe('unix socket files', () => {
  it('default mode is 0o660, set before the first accept', async () => {
    const { server } = await start(hello);
    const st = lstatSync(server.address() as string);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
  });

  it('socketMode and socketGroup are applied', async () => {
    const group = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('www-data:') || l.startsWith('nogroup:'))!;
    const [name, , gid] = group.split(':');
    const { server } = await start(hello, { socketMode: 0o600, socketGroup: name });
    const st = lstatSync(server.address() as string);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.gid).toBe(Number(gid));
  });

  it('replaces a stale socket file, removes its own on close', async () => {
    const path = join(dir.path, 'stale.sock');
    // A socket file nobody listens on: bind, then drop the fd without unlinking.
    const stale = createServer();
    await new Promise<void>((r) => stale.listen(path, r));
    const copy = join(dir.path, 'stale-copy.sock');
    // keep the file by renaming it away while the server closes, then back
    const { renameSync } = await import('node:fs');
    renameSync(path, copy);
    await new Promise<void>((r) => stale.close(() => r()));
    renameSync(copy, path);
    expect(lstatSync(path).isSocket()).toBe(true);
    const server = await serve(hello, { address: path, handleSignals: false });
    expect((await scgiRequest({ path }, {})).status).toBe(200);
    await server.close();
    expect(existsSync(path)).toBe(false);
  });

  it('refuses a path where a live server answers, and leaves it alone', async () => {
    const { server } = await start(hello);
    const path = server.address() as string;
    await expect(serve(hello, { address: path, handleSignals: false })).rejects.toMatchObject({ code: 'ERR_SCGI_ADDRESS_IN_USE' });
    expect((await scgiRequest({ path }, {})).status).toBe(200);
  });

  it('never removes a file that is not a socket', async () => {
    const path = join(dir.path, 'regular-file');
    writeFileSync(path, 'precious');
    await expect(serve(hello, { address: path, handleSignals: false })).rejects.toMatchObject({ code: 'ERR_SCGI_ADDRESS_NOT_SOCKET' });
    expect(readFileSync(path, 'utf8')).toBe('precious');
  });

  it('does not create a missing parent directory (only the default one): ERR_SCGI_INVALID_ADDRESS', async () => {
    const path = join(dir.path, 'a', 'b', 'c.sock');
    await expect(serve(hello, { address: path, handleSignals: false })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_ADDRESS' });
    expect(existsSync(join(dir.path, 'a'))).toBe(false);
  });
});

describe('socket, listen and createServer options', () => {
  it('socket: an existing net.Server', async () => {
    const net = createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => net.listen(0, '127.0.0.1', r));
    const server = await serve(hello, { socket: net, handleSignals: false });
    running.push(server);
    expect((await scgiRequest(targetOf(net.address() as never), {})).status).toBe(200);
  });

  it('listen and createServer hooks replace how the socket is made and accepted', async () => {
    const calls: string[] = [];
    const path = join(dir.path, 'hooks.sock');
    const server = await serve(hello, {
      address: path,
      handleSignals: false,
      createServer: (onConnection) => {
        calls.push('createServer');
        return createServer({ allowHalfOpen: true }, (socket) => {
          calls.push('connection');
          onConnection(socket);
        });
      },
      listen: (srv: Server, options) => {
        calls.push(`listen ${options.path}`);
        srv.listen(options);
      },
    });
    running.push(server);
    expect((await scgiRequest({ path }, {})).status).toBe(200);
    expect(calls).toEqual(['createServer', `listen ${path}`, 'connection']);
  });
});

describe('handler interface', () => {
  it('headers: wire order, get, getAll, has, contentLength, iteration', async () => {
    let seen: unknown;
    const { target } = await start((headers, client) => {
      seen = {
        pairs: [...headers],
        host: headers.get('HTTP_HOST'),
        dup: headers.getAll('HTTP_X_DUP'),
        missing: headers.get('NOPE'),
        has: headers.has('SCGI'),
        cl: headers.contentLength,
        raw: headers.rawValue(0).toString(),
      };
      client.end('Status: 204 No Content\r\n\r\n');
    });
    const ex = await exchange(target, fixture('nginx-tcp-duphdr.bin'));
    expect(ex.data.toString()).toBe('Status: 204 No Content\r\n\r\n');
    const v = vectors.find((x) => x.file === 'nginx-tcp-duphdr.bin')!;
    expect(seen).toEqual({
      pairs: v.pairs,
      host: v.pairs!.find(([k]) => k === 'HTTP_HOST')![1],
      dup: ['one', 'two'],
      missing: undefined,
      has: true,
      cl: 0,
      raw: '0',
    });
  });

  it('values are latin1 by default, utf8 on request; raw bytes reachable', async () => {
    const v = vectors.find((x) => x.file === 'nginx-tcp-utf8hdr.bin')!;
    const utf8 = v.pairs!.find(([k]) => k === 'HTTP_X_UTF8')![1];
    for (const headerEncoding of ['latin1', 'utf8'] as const) {
      let got: [string, Buffer] | undefined;
      const { target } = await start(
        (h, c) => {
          const i = [...h.keys()].indexOf('HTTP_X_UTF8');
          got = [h.get('HTTP_X_UTF8')!, h.rawValue(i)];
          c.end('Status: 200 OK\r\n\r\n');
        },
        { headerEncoding },
      );
      await exchange(target, fixture('nginx-tcp-utf8hdr.bin'));
      expect(got![1].toString('utf8')).toBe(utf8);
      expect(got![0]).toBe(headerEncoding === 'utf8' ? utf8 : Buffer.from(utf8).toString('latin1'));
    }
  });

  it('client yields exactly CONTENT_LENGTH bytes; bytes after are not a request (nginx-unbuf)', async () => {
    let calls = 0;
    const { target, server } = await start(async (headers, client) => {
      calls++;
      await digest(headers, client);
    });
    const file = fixture('nginx-unbuf-post100k.bin');
    const ex = await exchange(target, file);
    const res = ex.data.toString('latin1');
    expect(res).toContain('X-Length: 9003');
    expect(ex.error).toBe(null);
    expect(calls).toBe(1);
    expect(server.stats.requests).toBe(1);
  });

  it('every captured vector reaches the handler with its pairs and body', async () => {
    const seen = new Map<string, { pairs: [string, string][]; sha: string }>();
    const { target } = await start(
      async (headers, client) => {
        const hash = createHash('sha256');
        for await (const c of client) hash.update(c);
        seen.set(headers.get('X_FILE') ?? headers.get('REMOTE_PORT')!, { pairs: [...headers], sha: hash.digest('hex') });
        client.end('Status: 200 OK\r\n\r\n');
      },
      { headerEncoding: 'utf8' },
    );
    for (const v of vectors) {
      const ex = await exchange(target, fixture(v.file));
      if (v.pairs === null) {
        expect(ex.data.length).toBe(0);
        continue;
      }
      expect(ex.data.toString()).toBe('Status: 200 OK\r\n\r\n');
      const port = v.pairs.find(([k]) => k === 'REMOTE_PORT')?.[1];
      if (port === undefined) continue;
      const got = seen.get(port)!;
      expect(got.pairs).toEqual(v.pairs);
      if (v.bodyBytes === Number(v.contentLength)) expect(got.sha).toBe(v.bodySha256);
    }
  });

  it('for await over the body, then end(): the writable side survives the loop', async () => {
    const { target } = await start(async (_h, client) => {
      const parts: Buffer[] = [];
      for await (const chunk of client) parts.push(chunk);
      client.end(`Status: 200 OK\r\n\r\n${Buffer.concat(parts).toString().toUpperCase()}`);
    });
    const res = await scgiRequest(target, { body: 'shout' });
    expect(res.body.toString()).toBe('SHOUT');
  });

  it('writeHead: Content-Length from end(body), status reasons, repeated fields', async () => {
    const { target } = await start((_h, client) => {
      client.writeHead(404, 'Nope', { 'Set-Cookie': ['a=1', 'b=2'], 'X-N': 5 });
      client.end('gone');
    });
    const ex = await exchange(target, encodeRequest({}));
    expect(ex.data.toString()).toBe('Status: 404 Nope\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-N: 5\r\nContent-Length: 4\r\n\r\ngone');
  });

  it('end(body) writes the head as latin1 and the body in its own encoding, whatever the mix', async () => {
    const { target } = await start((headers, client) => {
      const uri = headers.get('REQUEST_URI');
      client.writeHead(200, { 'X-L': uri === '/latin1head' ? 'caf\u00e9' : 'plain' });
      if (uri === '/buffer') client.end(Buffer.from([0, 1, 2, 255]));
      else if (uri === '/latin1body') client.end('\u00ff\u00e9', 'latin1');
      else client.end('\u00fcn\u00ef \u2713');
    });
    const get = async (uri: string) => (await exchange(target, encodeRequest({ uri }))).data;
    const a = await get('/latin1head');
    expect(a.includes(Buffer.from('X-L: caf\xe9\r\n', 'latin1'))).toBe(true);
    expect(a.subarray(a.indexOf('\r\n\r\n') + 4).toString('utf8')).toBe('\u00fcn\u00ef \u2713');
    expect(a.toString('latin1')).toContain(`Content-Length: ${Buffer.byteLength('\u00fcn\u00ef \u2713')}\r\n`);
    const b = await get('/buffer');
    expect(b.subarray(b.indexOf('\r\n\r\n') + 4)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(b.toString('latin1')).toContain('Content-Length: 4\r\n');
    const c = await get('/latin1body');
    expect(c.subarray(c.indexOf('\r\n\r\n') + 4)).toEqual(Buffer.from([0xff, 0xe9]));
    const d = await get('/plain');
    expect(d.subarray(d.indexOf('\r\n\r\n') + 4).toString('utf8')).toBe('\u00fcn\u00ef \u2713');
  });

  it('writeHead then streamed writes: no Content-Length added', async () => {
    const { target } = await start((_h, client) => {
      client.writeHead(200, [['Content-Type', 'text/plain']]);
      client.write('a');
      client.write('b');
      client.end('c');
    });
    const ex = await exchange(target, encodeRequest({}));
    expect(ex.data.toString()).toBe('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nabc');
  });

  it('writeHead rejects CR/LF injection and bad names', async () => {
    const errors: string[] = [];
    const { target } = await start((headers, client) => {
      for (const bad of [
        () => client.writeHead(200, { 'X-A': `x\r\nSet-Cookie: evil=1` }),
        () => client.writeHead(200, { 'X-A': headers.get('HTTP_X_EVIL')! }),
        () => client.writeHead(200, { 'Bad Name': 'x' }),
        () => client.writeHead(200, 'OK\r\nX: y', {}),
        () => client.writeHead(42, {}),
      ]) {
        try {
          bad();
        } catch (err) {
          errors.push((err as ScgiError).code);
        }
      }
      client.writeHead(200, {});
      client.end('safe');
    });
    const ex = await exchange(target, encodeRequest({ headers: { HTTP_X_EVIL: 'a\nb' } }));
    expect(errors).toEqual(Array(5).fill('ERR_SCGI_INVALID_RESPONSE_HEADER'));
    expect(ex.data.toString()).toBe('Status: 200 OK\r\nContent-Length: 4\r\n\r\nsafe');
  });

  it('a streamed 1 MiB response in 64 KiB writes arrives intact, with backpressure', async () => {
    const chunk = Buffer.alloc(65536, 'x');
    const { target } = await start(async (_h, client) => {
      client.writeHead(200, {});
      for (let i = 0; i < 16; i++) {
        if (!client.write(chunk)) await new Promise((r) => client.once('drain', r));
      }
      client.end();
    });
    const ex = await exchange(target, encodeRequest({}), { timeout: 10_000 });
    const body = ex.data.subarray(ex.data.indexOf('\r\n\r\n') + 4);
    expect(body.length).toBe(16 * 65536);
  });

  it('a handler that ignores a big body: the response arrives whole, no reset', async () => {
    const { target } = await start((_h, client) => client.end('Status: 200 OK\r\n\r\nignored'));
    const ex = await exchange(target, encodeRequest({ body: bigBody(2 * 1024 * 1024) }), { timeout: 10_000 });
    expect(ex.error).toBe(null);
    expect(ex.data.toString()).toBe('Status: 200 OK\r\n\r\nignored');
  });

  it('allowHalfOpen: a peer that half-closes after its request still gets the answer', async () => {
    const { target } = await start(digest, { allowHalfOpen: true });
    const ex = await exchange(target, encodeRequest({ body: 'abc' }), { end: true });
    expect(ex.data.toString()).toContain('X-Length: 3');
  });

  it('by default a FIN before the response ends means the front went away: client emits close', async () => {
    let closed = false;
    let wrote: boolean | undefined;
    const { target } = await start((_h, client) => {
      client.on('close', () => (closed = true));
      setTimeout(() => (wrote = client.write('late')), 100);
    });
    const ex = await exchange(target, encodeRequest({}), { end: true });
    expect(ex.closed).toBe(true);
    await waitFor(() => closed && wrote !== undefined);
    expect(wrote).toBe(false);
  });
});

describe('errors in handlers (catchErrors)', () => {
  const thrower: Handler = (headers) => {
    if (headers.get('REQUEST_URI') === '/boom') throw new Error('boom');
    if (headers.get('REQUEST_URI') === '/reject') return Promise.reject(new Error('rejected'));
    if (headers.get('REQUEST_URI') === '/string') throw 'a string';
    return undefined;
  };

  it('sync throw and rejection → 500, reported to onError, server keeps serving', async () => {
    const reported: string[] = [];
    const { target, server } = await start(
      async (headers, client) => {
        await thrower(headers, client);
        client.end('Status: 200 OK\r\n\r\nfine');
      },
      { onError: (err, client) => reported.push(`${err.message} ${client?.headers.get('REQUEST_URI')}`) },
    );
    for (const uri of ['/boom', '/reject', '/string']) {
      const res = await scgiRequest(target, { uri });
      expect(res.status).toBe(500);
      expect(res.body.toString()).toBe('Internal Server Error\n');
    }
    expect((await scgiRequest(target, { uri: '/ok' })).body.toString()).toBe('fine');
    expect(reported).toEqual(['boom /boom', 'rejected /reject', 'handler failed with a string /string']);
    expect(server.stats.errors).toBe(3);
  });

  it('a throw after part of the response is out: the connection is cut, next request fine', async () => {
    const { target } = await start(
      async (headers, client) => {
        if (headers.get('REQUEST_URI') === '/partial') {
          client.write('Status: 200 OK\r\n\r\npartial');
          await new Promise((r) => setTimeout(r, 10));
          throw new Error('late');
        }
        client.end('Status: 200 OK\r\n\r\nok');
      },
      { onError: () => {} },
    );
    const ex = await exchange(target, encodeRequest({ uri: '/partial' }));
    expect(ex.data.toString()).toBe('Status: 200 OK\r\n\r\npartial');
    expect(ex.closed).toBe(true);
    expect((await scgiRequest(target, {})).body.toString()).toBe('ok');
  });

  it('the default onError writes one line', async () => {
    const lines: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => lines.push(a.join(' '));
    try {
      const { target } = await start(() => {
        throw new TypeError('bad thing');
      });
      await scgiRequest(target, { uri: '/x' });
    } finally {
      console.error = orig;
    }
    expect(lines).toEqual(['scgi: handler error in GET /x: TypeError: bad thing']);
  });

  it('a predicate decides which errors are caught', async () => {
    const seen: unknown[] = [];
    const { target } = await start(
      () => {
        throw new RangeError('r');
      },
      {
        catchErrors: (err) => {
          seen.push(err);
          return err instanceof RangeError;
        },
        onError: () => {},
      },
    );
    expect((await scgiRequest(target, {})).status).toBe(500);
    expect(seen).toHaveLength(1);
  });
});

describe('bad input and limits (DESIGN §4)', () => {
  const bad: [string, Buffer][] = [
    ['length not digits', Buffer.from('abc:')],
    ['leading zero', Buffer.from('012:')],
    ['8 digits', Buffer.from('12345678:')],
    ['missing comma', Buffer.concat([Buffer.from('17:'), block([['CONTENT_LENGTH', '0']]), Buffer.from('X')])],
    ['odd field count', netstring('CONTENT_LENGTH\x000\x00SCGI\x00')],
    ['empty name', netstring('CONTENT_LENGTH\x000\x00\x001\x00')],
    [
      'CONTENT_LENGTH not first',
      netstring(
        block([
          ['SCGI', '1'],
          ['CONTENT_LENGTH', '0'],
        ]),
      ),
    ],
    ['CONTENT_LENGTH -1', netstring(block([['CONTENT_LENGTH', '-1']]))],
    ['CONTENT_LENGTH 2^53+1', netstring(block([['CONTENT_LENGTH', '9007199254740993']]))],
    ['netstring 10^15', Buffer.from('1000000000000000:')],
    ['NULs and 0xff', Buffer.from([0, 0xff, 0, 0xff, 0x3a])],
  ];
  for (const [what, bytes] of bad) {
    it(`${what}: closed, no handler call, counted; the next request is served`, async () => {
      let calls = 0;
      const codes: string[] = [];
      const { target, server } = await start((h, c) => {
        calls++;
        hello(h, c);
      });
      server.on('clientError', (err: ScgiError) => codes.push(err.code));
      const ex = await exchange(target, bytes);
      expect(ex.closed).toBe(true);
      expect(ex.data.length).toBe(0);
      expect(calls).toBe(0);
      expect(server.stats.rejected).toBe(1);
      expect(codes).toHaveLength(1);
      expect((await scgiRequest(target, { uri: '/next' })).body.toString()).toBe('hello /next');
      await waitFor(async () => (await server.getConnections()) === 0);
    });
  }

  it('a header that arrives a few bytes per read is parsed once, when complete', async () => {
    let calls = 0;
    const { target } = await start((h, c) => {
      calls++;
      hello(h, c);
    });
    const bytes = encodeRequest({ uri: '/trickle', headers: { HTTP_X_PAD: 'p'.repeat(200) } });
    const pieces: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 3) pieces.push(bytes.subarray(i, i + 3));
    const ex = await exchange(target, pieces, { delay: 1, timeout: 10_000 });
    expect(ex.data.toString()).toContain('hello /trickle');
    expect(calls).toBe(1);
  });

  it('a 10 MB header length is refused before it is buffered', async () => {
    const { target, server } = await start(hello);
    const ex = await exchange(target, [Buffer.from('10485760:'), Buffer.alloc(1024 * 1024, 'a')]);
    expect(ex.closed).toBe(true);
    expect(server.stats.rejected).toBe(1);
  });

  it('maxHeaderSize', async () => {
    const { target } = await start(hello, { maxHeaderSize: 400 });
    const ex = await exchange(target, encodeRequest({ headers: { HTTP_BIG: 'x'.repeat(400) } }));
    expect(ex.data.length).toBe(0);
    expect((await scgiRequest(target, {})).status).toBe(200);
  });

  it('strict: duplicates and a missing SCGI are closed; default accepts them', async () => {
    const lenient = await start(hello);
    const strict = await start(hello, { strict: true });
    for (const file of ['nginx-tcp-duphdr.bin', 'nginx-noparams-get.bin']) {
      expect((await exchange(lenient.target, fixture(file))).data.toString()).toContain('Status: 200 OK');
      const ex = await exchange(strict.target, fixture(file));
      expect(ex.data.length).toBe(0);
    }
    expect(strict.server.stats.rejected).toBe(2);
  });

  it('CONTENT_LENGTH over maxBodySize → 413, handler not called', async () => {
    let calls = 0;
    const { target } = await start(() => void calls++, { maxBodySize: 10 });
    const res = await scgiRequest(target, { body: 'x'.repeat(11) });
    expect(res.status).toBe(413);
    expect(calls).toBe(0);
  });

  it('headerTimeout closes silent and slow clients; others are served meanwhile', async () => {
    const { target, server } = await start(hello, { headerTimeout: 300 });
    const silent = exchange(target, Buffer.alloc(0), { timeout: 3000 });
    const slow = exchange(
      target,
      [...Buffer.from('50:CONTENT_LENGTH')].map((b) => Buffer.from([b])),
      { delay: 100, timeout: 3000 },
    );
    expect((await scgiRequest(target, {})).status).toBe(200);
    const [a, b] = await Promise.all([silent, slow]);
    expect(a.closed).toBe(true);
    expect(b.closed).toBe(true);
    expect(server.stats.timeouts).toBe(2);
    expect(server.stats.rejected).toBe(0); // a timeout, not bad input
  });

  it('requestTimeout closes a handler that never ends', async () => {
    const errors: string[] = [];
    let closed = false;
    const { target } = await start(
      (_h, client) => {
        client.on('close', () => (closed = true));
      },
      { requestTimeout: 200, onError: (e) => errors.push((e as ScgiError).code) },
    );
    const ex = await exchange(target, encodeRequest({}), { timeout: 3000 });
    expect(ex.closed).toBe(true);
    expect(errors).toEqual(['ERR_SCGI_REQUEST_TIMEOUT']);
    expect(closed).toBe(true);
  });

  it('maxConnections: the next connection gets 503, and the server recovers', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { target, server } = await start(
      async (_h, client) => {
        await gate;
        client.end('Status: 200 OK\r\n\r\nok');
      },
      { maxConnections: 2 },
    );
    const held = [scgiRequest(target, {}), scgiRequest(target, {})];
    await waitFor(() => server.stats.requests === 2);
    const over = await scgiRequest(target, {});
    expect(over.status).toBe(503);
    release();
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    await waitFor(async () => (await server.getConnections()) === 0);
    expect((await scgiRequest(target, {})).status).toBe(200);
    expect(server.stats.overloaded).toBe(1);
  });

  it('body shorter than CONTENT_LENGTH then EOF: the body stream errors ERR_SCGI_BODY_TRUNCATED', async () => {
    let caught: unknown;
    const { target } = await start(async (_h, client) => {
      try {
        for await (const _ of client) {
          // reading
        }
      } catch (err) {
        caught = err;
      }
    });
    const bytes = encodeRequest({ body: 'x'.repeat(100) });
    await exchange(target, bytes.subarray(0, bytes.length - 50), { end: true });
    await waitFor(() => caught !== undefined);
    expect((caught as ScgiError).code).toBe('ERR_SCGI_BODY_TRUNCATED');
  });

  it('an empty connection (Apache after its own 411) is a quiet close', async () => {
    let calls = 0;
    const { target, server } = await start(() => void calls++);
    const ex = await exchange(target, fixture('apache-tcp-chunked.bin'), { end: true });
    expect(ex.closed).toBe(true);
    expect(calls).toBe(0);
    expect(server.stats.rejected).toBe(0);
  });

  it('the front going away mid-response: client emits close, no crash', async () => {
    let closed!: () => void;
    const gotClose = new Promise<void>((r) => (closed = r));
    const { target } = await start(async (_h, client) => {
      client.on('close', closed);
      client.write('Status: 200 OK\r\n\r\n');
      const timer = setInterval(() => client.write('more'), 5);
      await gotClose;
      clearInterval(timer);
      client.write('after close'); // must not throw or crash
    });
    const socket = connect(target as never);
    socket.write(encodeRequest({}));
    await new Promise((r) => socket.once('data', r));
    socket.destroy();
    await gotClose;
  });
});

describe('close()', () => {
  it('lets a request in progress finish, refuses new connections', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { target, server } = await start(async (_h, client) => {
      await gate;
      client.end('Status: 200 OK\r\n\r\nlate');
    });
    const inflight = scgiRequest(target, {});
    await waitFor(() => server.stats.requests === 1);
    const closing = server.close();
    const refused = await exchange(target, encodeRequest({}));
    expect(refused.error).toMatch(/ECONNREFUSED|ENOENT/);
    release();
    expect((await inflight).body.toString()).toBe('late');
    await closing;
  });

  it('destroys what is left after shutdownTimeout', async () => {
    const { target, server } = await start(() => {}, { shutdownTimeout: 100 });
    const pending = exchange(target, encodeRequest({}));
    await waitFor(() => server.stats.requests === 1);
    await server.close();
    expect((await pending).closed).toBe(true);
  });
});

describe('readHeader(stream)', () => {
  it('parses from any stream, body of exactly CONTENT_LENGTH, rest pushed back', async () => {
    const { PassThrough } = await import('node:stream');
    const s = new PassThrough();
    const bytes = Buffer.concat([encodeRequest({ body: 'hello', uri: '/r' }), Buffer.from('EXTRA')]);
    // feed it in 3-byte pieces
    for (let i = 0; i < bytes.length; i += 3) s.write(bytes.subarray(i, i + 3));
    const { headers, body } = await readHeader(s);
    expect(headers.get('REQUEST_URI')).toBe('/r');
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c);
    expect(Buffer.concat(parts).toString()).toBe('hello');
    s.end();
    const rest: Buffer[] = [];
    for await (const c of s) rest.push(c);
    expect(Buffer.concat(rest).toString()).toBe('EXTRA');
  });

  it('rejects bad input with the code', async () => {
    const { PassThrough } = await import('node:stream');
    const s = new PassThrough();
    s.end('x:');
    await expect(readHeader(s)).rejects.toMatchObject({ code: 'ERR_SCGI_BAD_NETSTRING' });
    const t = new PassThrough();
    t.end('20:CONTENT');
    await expect(readHeader(t)).rejects.toMatchObject({ code: 'ERR_SCGI_INCOMPLETE_HEADER' });
  });
});

describe('default address', () => {
  it('is /tmp/<uid>/scgi', async () => {
    const { defaultAddress } = await import('../src/index.ts');
    expect(defaultAddress()).toBe(`/tmp/${process.getuid!()}/scgi`);
  });

  it('serve() without address or port listens there', async () => {
    const { defaultAddress } = await import('../src/index.ts');
    const path = defaultAddress();
    // serve() creates the directory (0o711) when it is missing; do not create it here (it would be 0o755).
    // Another test run (or the demo) may be live on it: skip only that case by asserting the documented refusal.
    let server: ScgiServer;
    try {
      server = await serve(hello, { handleSignals: false });
    } catch (err) {
      expect((err as ScgiError).code).toBe('ERR_SCGI_ADDRESS_IN_USE');
      return;
    }
    running.push(server);
    expect(server.address()).toBe(path);
    expect(lstatSync(join(path, '..')).mode & 0o777).toBe(0o711);
    expect((await scgiRequest({ path }, { uri: '/d' })).body.toString()).toBe('hello /d');
  });
});
