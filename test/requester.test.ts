// scgi/client (src/client/request.ts) against misbehaving raw servers: limits on
// the response head and a buffered body, a streaming body, timeouts for
// connect / head / idle, an empty response; and the CGI variables it sends,
// checked by a real WSGI validator (Python's wsgiref.validate) behind the
// reference SCGI server, and by Express through scgi/http.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { request, requestStream, encodeRequest } from '../src/client/request.ts';
import { serve } from '../src/index.ts';
import { fromNodeListener } from '../src/adapters/http.ts';
import { tempDir, waitFor } from './helpers.ts';
import { freePort } from './fronts/nginx.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const dir = tempDir('scgi-requester-');
afterAll(() => dir.cleanup());

const servers: Server[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

let n = 0;
/**
 * A raw server on a unix socket that reads the request, then runs `behave`
 * on the socket. Returns the address and how many bytes it managed to write.
 */
async function rawServer(
  behave: (socket: Socket, stats: { written: number }) => void,
): Promise<{ address: string; stats: { written: number; closed: number } }> {
  const stats = { written: 0, closed: 0 };
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.on('close', () => stats.closed++);
    socket.once('data', () => behave(socket, stats));
  });
  servers.push(server);
  const address = join(dir.path, `raw${n++}.sock`);
  await new Promise<void>((r) => server.listen(address, r));
  return { address, stats };
}

/** Write `piece` again and again (with backpressure) until the peer goes, at most `cap` bytes. */
function endless(socket: Socket, stats: { written: number }, piece: Buffer, cap = 256 * 1024 * 1024): void {
  const pump = () => {
    while (!socket.destroyed && stats.written < cap) {
      stats.written += piece.length;
      if (!socket.write(piece)) return void socket.once('drain', pump);
    }
    if (!socket.destroyed) socket.end();
  };
  pump();
}

const HEAD_LINE = Buffer.from(`X-Padding: ${'a'.repeat(1000)}\r\n`);

describe('limits: a hostile server cannot make the requester buffer without bound', () => {
  it('an endless head (header lines, no blank line) is refused at maxHeaderSize', async () => {
    const { address, stats } = await rawServer((s, st) => endless(s, st, HEAD_LINE));
    const err = await request(address, { maxHeaderSize: 16 * 1024 }).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_RESPONSE_TOO_LARGE');
    expect(err.message).toMatch(/maxHeaderSize/);
    await waitFor(() => stats.closed === 1);
    // it stopped reading soon after the limit: a few socket buffers, not the 256 MiB cap
    expect(stats.written).toBeLessThan(32 * 1024 * 1024);
  });

  it('the default head limit is 64 KiB', async () => {
    const { address } = await rawServer((s, st) => endless(s, st, HEAD_LINE));
    const err = await request(address).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_RESPONSE_TOO_LARGE');
    expect(err.message).toMatch(/65536/);
  });

  it('an endless body is refused at maxResponseSize (buffered request())', async () => {
    const { address, stats } = await rawServer((s, st) => {
      s.write('Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n');
      endless(s, st, Buffer.alloc(64 * 1024, 7));
    });
    const err = await request(address, { maxResponseSize: 1024 * 1024 }).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_RESPONSE_TOO_LARGE');
    expect(err.message).toMatch(/maxResponseSize/);
    await waitFor(() => stats.closed === 1);
    expect(stats.written).toBeLessThan(32 * 1024 * 1024);
  });

  it('the default buffered body limit is finite (16 MiB)', async () => {
    const { address, stats } = await rawServer((s, st) => {
      s.write('Status: 200 OK\r\n\r\n');
      endless(s, st, Buffer.alloc(64 * 1024, 7));
    });
    const err = await request(address).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_RESPONSE_TOO_LARGE');
    expect(err.message).toMatch(/16777216/);
    await waitFor(() => stats.closed === 1);
    expect(stats.written).toBeLessThan(64 * 1024 * 1024);
  });

  it('requestStream(): a large body streams with backpressure (the server is held back while nobody reads)', async () => {
    const total = 48 * 1024 * 1024;
    const { address, stats } = await rawServer((s, st) => {
      s.write('Status: 200 OK\r\nX-Big: yes\r\n\r\n');
      endless(s, st, Buffer.alloc(64 * 1024, 9), total);
    });
    const res = await requestStream(address, { uri: '/big' });
    expect(res.status).toBe(200);
    expect(res.headers['x-big']).toBe('yes');
    await new Promise((r) => setTimeout(r, 300));
    // nobody reads: the server could only fill the socket buffers
    expect(stats.written).toBeLessThan(8 * 1024 * 1024);
    // one chunk read, then the reader stops: still held back
    const first = await new Promise<Buffer>((r) =>
      res.body.once('data', (c: Buffer) => {
        res.body.pause(); // at once: the flowing loop would emit the next chunk before a promise callback runs
        r(c);
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(stats.written).toBeLessThan(8 * 1024 * 1024);
    let got = first.length;
    for await (const chunk of res.body) got += (chunk as Buffer).length;
    expect(got).toBe(total);
  });

  it('a server that closes without a byte gives "empty response"', async () => {
    const { address } = await rawServer((s) => s.end());
    const err = await request(address).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_NO_RESPONSE');
    expect(err.message).toMatch(/empty response/);
  });

  it('a head cut off before its blank line is a bad response, not an empty one', async () => {
    const { address } = await rawServer((s) => s.end('Status: 200 OK\r\nX-A: b\r\n'));
    const err = await request(address).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_BAD_RESPONSE');
  });
});

describe('timeouts', () => {
  it('headersTimeout: a server that accepts, reads, and never answers', async () => {
    const { address } = await rawServer(() => {});
    const t0 = Date.now();
    const err = await request(address, { headersTimeout: 300, timeout: 20_000 }).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_RESPONSE_TIMEOUT');
    expect(err.message).toMatch(/headersTimeout/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('bodyTimeout: a body that stops arriving (buffered and streamed)', async () => {
    const { address } = await rawServer((s) => s.write('Status: 200 OK\r\n\r\npart of a body'));
    const err = await request(address, { bodyTimeout: 300, timeout: 20_000 }).then(
      () => null,
      (e) => e,
    );
    expect(err?.code).toBe('ERR_SCGI_RESPONSE_TIMEOUT');
    expect(err.message).toMatch(/bodyTimeout/);
    const res = await requestStream(address, { bodyTimeout: 300 });
    const streamErr = await (async () => {
      for await (const _ of res.body) void _;
    })().then(
      () => null,
      (e) => e,
    );
    expect(streamErr?.code).toBe('ERR_SCGI_RESPONSE_TIMEOUT');
  });

  it('bodyTimeout is an idle timeout: a slow body that keeps coming is read whole', async () => {
    const { address } = await rawServer((s) => {
      s.write('Status: 200 OK\r\n\r\n');
      let i = 0;
      const t = setInterval(() => {
        if (s.destroyed) return clearInterval(t);
        s.write('x');
        if (++i === 8) {
          clearInterval(t);
          s.end();
        }
      }, 100);
    });
    const res = await request(address, { bodyTimeout: 400 });
    expect(res.body.toString()).toBe('xxxxxxxx');
  });

  it('connectTimeout: a TCP listener whose accept queue is full', async () => {
    // Python listens with backlog 0 and never accepts; two connections fill
    // the queue, after which the kernel drops SYNs and connect() hangs.
    const py = spawn(
      'python3',
      ['-c', "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)"],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(py);
    const port = await new Promise<number>((r) => py.stdout!.once('data', (d) => r(Number(String(d).trim()))));
    const { connect } = await import('node:net');
    const fillers = Array.from({ length: 4 }, () => connect({ host: '127.0.0.1', port }).on('error', () => {}));
    try {
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      const err = await request(`127.0.0.1:${port}`, { connectTimeout: 300, timeout: 20_000 }).then(
        () => null,
        (e) => e,
      );
      expect(err?.code).toBe('ERR_SCGI_RESPONSE_TIMEOUT');
      expect(err.message).toMatch(/connect/);
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      for (const s of fillers) s.destroy();
    }
  });

  it('every ms option is checked against the timer range (2^31-1)', async () => {
    for (const key of ['timeout', 'connectTimeout', 'headersTimeout', 'bodyTimeout']) {
      const err = await request('/nonexistent.sock', { [key]: 2 ** 31 }).then(
        () => null,
        (e) => e,
      );
      expect(err?.code, key).toBe('ERR_SCGI_INVALID_OPTION');
      expect(err.message, key).toMatch(/2147483647/);
    }
    for (const key of ['maxHeaderSize', 'maxResponseSize']) {
      const err = await request('/nonexistent.sock', { [key]: -1 }).then(
        () => null,
        (e) => e,
      );
      expect(err?.code, key).toBe('ERR_SCGI_INVALID_OPTION');
    }
  });
});

describe('the CLI uses the same limits', () => {
  it('scgi request against an endless head exits 1 saying why, without buffering it all', async () => {
    const { address, stats } = await rawServer((s, st) => endless(s, st, HEAD_LINE));
    const child = spawn(process.execPath, [CLI, 'request', address, '/'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (c) => (stderr += c));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(1);
    expect(stderr).toMatch(/ERR_SCGI_RESPONSE_TOO_LARGE|maxHeaderSize/);
    expect(stats.written).toBeLessThan(32 * 1024 * 1024);
  });

  it('scgi request streams a large body to stdout', async () => {
    const total = 40 * 1024 * 1024;
    const { address } = await rawServer((s, st) => {
      s.write('Status: 200 OK\r\n\r\n');
      endless(s, st, Buffer.alloc(64 * 1024, 0x61), total);
    });
    const child = spawn(process.execPath, [CLI, 'request', address, '/'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let got = 0;
    child.stdout!.on('data', (c: Buffer) => (got += c.length));
    // 'close', not 'exit': the child's stdio may still hold data for this
    // process when it exits (Node 26 reports 'exit' first more often).
    const code = await new Promise<number | null>((r) => child.once('close', r));
    expect(code).toBe(0);
    expect(got).toBeGreaterThan(total);
  });
});

describe('the CGI variables it sends (what nginx scgi_params sends, derived from the URI)', () => {
  async function echoVars(): Promise<{ address: string; seen: Map<string, string>[] }> {
    const seen: Map<string, string>[] = [];
    const address = join(dir.path, `echo${n++}.sock`);
    const server = await serve(
      (headers, client) => {
        seen.push(new Map(headers.entries()));
        client.end('Status: 200 OK\r\n\r\nok');
      },
      { address, handleSignals: false, headerEncoding: 'utf8' },
    );
    afterEachClose.push(server);
    return { address, seen };
  }
  const afterEachClose: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(afterEachClose.splice(0).map((s) => s.close()));
  });

  it('sends PATH_INFO, SCRIPT_NAME, SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, REMOTE_ADDR and the rest of scgi_params', async () => {
    const { address, seen } = await echoVars();
    await request(address, { uri: '/app/caf%C3%A9?x=1&y=2' });
    const v = seen[0]!;
    expect(v.get('REQUEST_METHOD')).toBe('GET');
    expect(v.get('REQUEST_URI')).toBe('/app/caf%C3%A9?x=1&y=2');
    expect(v.get('QUERY_STRING')).toBe('x=1&y=2');
    expect(v.get('DOCUMENT_URI')).toBe('/app/café');
    expect(v.get('PATH_INFO')).toBe('/app/café');
    expect(v.get('SCRIPT_NAME')).toBe('');
    expect(v.get('SERVER_NAME')).toBe('localhost');
    expect(v.get('SERVER_PORT')).toBe('80');
    expect(v.get('HTTP_HOST')).toBe('localhost');
    expect(v.get('SERVER_PROTOCOL')).toBe('HTTP/1.1');
    expect(v.get('REQUEST_SCHEME')).toBe('http');
    expect(v.get('REMOTE_ADDR')).toBe('127.0.0.1');
    expect(v.get('SCGI')).toBe('1');
    expect(v.has('HTTPS')).toBe(false);
  });

  it('an absolute URI gives the scheme, host and port; each variable can be overridden', async () => {
    const { address, seen } = await echoVars();
    await request(address, { uri: 'https://example.org:8443/a/b?q' });
    const v = seen[0]!;
    expect(v.get('REQUEST_URI')).toBe('/a/b?q');
    expect(v.get('PATH_INFO')).toBe('/a/b');
    expect(v.get('SERVER_NAME')).toBe('example.org');
    expect(v.get('SERVER_PORT')).toBe('8443');
    expect(v.get('HTTP_HOST')).toBe('example.org:8443');
    expect(v.get('REQUEST_SCHEME')).toBe('https');
    expect(v.get('HTTPS')).toBe('on');
    await request(address, {
      uri: '/x',
      headers: { SERVER_NAME: 'app.test', SERVER_PORT: '8080', REMOTE_ADDR: '10.0.0.9', SCRIPT_NAME: '/mount', PATH_INFO: '/x', Host: 'app.test:8080' },
    });
    const w = seen[1]!;
    expect(w.get('SERVER_NAME')).toBe('app.test');
    expect(w.get('SERVER_PORT')).toBe('8080');
    expect(w.get('REMOTE_ADDR')).toBe('10.0.0.9');
    expect(w.get('SCRIPT_NAME')).toBe('/mount');
    expect(w.get('HTTP_HOST')).toBe('app.test:8080');
    // overridden, not sent twice
    expect(
      encodeRequest({ uri: '/x', headers: { SERVER_NAME: 'a' } })
        .toString('latin1')
        .match(/SERVER_NAME\0/g),
    ).toHaveLength(1);
  });

  it('a Host header without an absolute URI gives SERVER_NAME and SERVER_PORT', async () => {
    const { address, seen } = await echoVars();
    await request(address, { uri: '/', headers: { Host: 'shop.test:8081' } });
    expect(seen[0]!.get('SERVER_NAME')).toBe('shop.test');
    expect(seen[0]!.get('SERVER_PORT')).toBe('8081');
    expect(seen[0]!.get('HTTP_HOST')).toBe('shop.test:8081');
  });

  it('Express through scgi/http sees a host and a path it can route on', async () => {
    const app = express();
    app.get('/items/:id', (req, res) => res.json({ hostname: req.hostname, path: req.path, id: req.params.id, protocol: req.protocol }));
    const address = join(dir.path, `express${n++}.sock`);
    const server = await serve(fromNodeListener(app), { address, handleSignals: false });
    afterEachClose.push(server);
    const res = await request(address, { uri: '/items/42?full=1' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ hostname: 'localhost', path: '/items/42', id: '42', protocol: 'http' });
  });

  it("a WSGI app under Python's wsgiref.validate (PEP 3333 checks) behind the reference SCGI server routes on PATH_INFO", async () => {
    const check = spawnSync('python3', ['-c', 'import scgi.scgi_server'], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`the reference SCGI server is not installed: python3 -m pip install scgi==2.2\n${check.stderr}`);
    const port = await freePort();
    const py = spawn('python3', [fileURLToPath(new URL('./apps/python-wsgi-scgi.py', import.meta.url)), String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(py);
    await new Promise<void>((resolve, reject) => {
      py.stdout!.once('data', () => resolve());
      py.once('exit', (code) => reject(new Error(`python exited ${code}`)));
    });
    const address = `127.0.0.1:${port}`;
    let res: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 50; i++) {
      try {
        res = await request(address, { uri: '/hello/world?x=1', timeout: 2000 });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(res?.status).toBe(200);
    expect(res!.body.toString()).toBe('route=/hello/world server=localhost:80 query=x=1');
  });
});
