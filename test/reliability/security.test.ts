// docs/security.md, checked: socket permissions (mode, group, umask, the
// default directory's ownership check) and response-header injection through
// writeHead and both adapters, with values taken from request headers.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { serve, type ScgiError, type ServeOptions } from '../../src/index.ts';
import { fromNodeListener } from '../../src/adapters/http.ts';
import { fromFetch } from '../../src/adapters/fetch.ts';
import { encodeRequest } from '../../src/client/request.ts';
import { exchange, testServers } from '../helpers.ts';
import { spyOnProcessErrors } from './util.ts';

spyOnProcessErrors();
const pool = testServers({ onError: () => {} }, 'scgi-sec-');
const ok = () => (_h: unknown, c: { end(s: string): void }) => c.end('Status: 200 OK\r\n\r\nok');

function group(name: string): number {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (line === undefined) throw new Error(`no group ${name}`);
  return Number(line.split(':')[2]);
}

describe('unix socket permissions', () => {
  it('default mode 0o660, group = the process group, and the umask is left as it was', async () => {
    const umask = process.umask();
    const { server } = await pool.start(ok() as never);
    const st = lstatSync(server.address() as string);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.uid).toBe(process.getuid!());
    expect(st.gid).toBe(process.getgid!());
    expect(process.umask()).toBe(umask);
  });

  it.each([
    ['a group name', { socketGroup: 'nogroup' }],
    ['a gid', { socketGroup: group('nogroup') }],
    ['a gid as a string', { socketGroup: String(group('nogroup')) }],
  ] as [string, ServeOptions][])('socketGroup as %s is applied, mode stays 0o660', async (_what, options) => {
    const { server } = await pool.start(ok() as never, options);
    const st = lstatSync(server.address() as string);
    expect(st.gid).toBe(group('nogroup'));
    expect(st.mode & 0o777).toBe(0o660);
  });

  it('an unknown group is refused before anything is created', async () => {
    const path = join(pool.dir, 'nogroup-here.sock');
    await expect(serve(ok() as never, { address: path, socketGroup: 'no-such-group-xyz', handleSignals: false })).rejects.toMatchObject({
      code: 'ERR_SCGI_INVALID_OPTION',
    });
    expect(existsSync(path)).toBe(false);
  });

  it('socketMode is applied exactly, whatever the process umask', async () => {
    const old = process.umask(0o000);
    try {
      const { server } = await pool.start(ok() as never, { socketMode: 0o600 });
      expect(lstatSync(server.address() as string).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });
});

describe('the default socket directory /tmp/<uid>', () => {
  afterEach(() => vi.restoreAllMocks());

  it('belongs to another user → ERR_SCGI_UNSAFE_SOCKET_DIR, nothing created in it', async () => {
    // Pretend to be a uid whose /tmp/<uid> does not exist yet, then create that
    // directory as ourselves: to the server it is someone else's directory.
    let uid = 40_000 + (process.pid % 10_000);
    while (existsSync(`/tmp/${uid}`)) uid++;
    const dir = `/tmp/${uid}`;
    mkdirSync(dir, { mode: 0o777 });
    try {
      vi.spyOn(process, 'getuid').mockReturnValue(uid);
      const err = await serve(ok() as never, { handleSignals: false }).then(
        () => null,
        (e: ScgiError) => e,
      );
      expect(err?.code).toBe('ERR_SCGI_UNSAFE_SOCKET_DIR');
      expect(existsSync(join(dir, 'scgi'))).toBe(false);
      expect(statSync(dir).uid).not.toBe(uid);
    } finally {
      vi.restoreAllMocks();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('response header injection (CR/LF/NUL from request headers)', () => {
  // nginx refuses CR/LF in request headers itself, but other fronts, other
  // encodings and decoded values (%0d%0a in a query string) can carry them.
  const evil = [
    ['CRLF', 'x\r\nSet-Cookie: session=attacker'],
    ['LF', 'x\nSet-Cookie: session=attacker'],
    ['CR', 'x\rSet-Cookie: session=attacker'],
    ['CRLFCRLF (body injection)', 'x\r\n\r\n<script>'],
  ];

  const request = (value: string) => encodeRequest({ uri: '/echo', headers: [['HTTP_X_ECHO', value]] });

  /** The response has exactly one Status line and no injected field. */
  function expectNoInjection(data: Buffer) {
    const text = data.toString('latin1');
    const head = text.slice(0, Math.max(0, text.indexOf('\r\n\r\n')));
    expect(head).not.toMatch(/Set-Cookie/i);
    expect(head).not.toMatch(/attacker/);
    expect(text).not.toMatch(/<script>/);
  }

  it.each(evil)('writeHead with a %s value from a request header: refused (ERR_SCGI_INVALID_RESPONSE_HEADER), nothing injected', async (_what, value) => {
    const codes: string[] = [];
    const { target } = await pool.start((headers, client) => {
      try {
        client.writeHead(200, { 'X-Echo': headers.get('HTTP_X_ECHO')! });
      } catch (err) {
        codes.push((err as ScgiError).code);
        client.writeHead(400, { 'Content-Type': 'text/plain' });
      }
      client.end('done');
    });
    const ex = await exchange(target, request(value));
    expect(codes).toEqual(['ERR_SCGI_INVALID_RESPONSE_HEADER']);
    expect(ex.data.toString()).toBe('Status: 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\ndone');
    expectNoInjection(ex.data);
  });

  it('a NUL (which no SCGI request value can carry: it is the separator) in a value, a reason or a name: refused', async () => {
    const codes: string[] = [];
    const { target } = await pool.start((_h, client) => {
      for (const bad of [
        () => client.writeHead(200, { 'X-A': 'x\0y' }),
        () => client.writeHead(200, 'O\0K', {}),
        () => client.writeHead(200, { 'X\0A': 'x' }),
      ]) {
        try {
          bad();
        } catch (err) {
          codes.push((err as ScgiError).code);
        }
      }
      client.writeHead(200, {});
      client.end('safe');
    });
    const ex = await exchange(target, encodeRequest({}));
    expect(codes).toEqual(Array(3).fill('ERR_SCGI_INVALID_RESPONSE_HEADER'));
    expect(ex.data.toString()).toBe('Status: 200 OK\r\nContent-Length: 4\r\n\r\nsafe');
  });

  it.each(evil)('writeHead with a %s reason phrase or header name: refused', async (_what, value) => {
    const codes: string[] = [];
    const { target } = await pool.start((headers, client) => {
      const v = headers.get('HTTP_X_ECHO')!;
      for (const bad of [() => client.writeHead(200, v, {}), () => client.writeHead(200, { [v]: 'x' })]) {
        try {
          bad();
        } catch (err) {
          codes.push((err as ScgiError).code);
        }
      }
      client.writeHead(200, {});
      client.end('safe');
    });
    const ex = await exchange(target, request(value));
    expect(codes).toEqual(['ERR_SCGI_INVALID_RESPONSE_HEADER', 'ERR_SCGI_INVALID_RESPONSE_HEADER']);
    expectNoInjection(ex.data);
  });

  it.each(evil)('scgi/http: res.setHeader with a %s value from req.headers: the app errors, nothing injected', async (_what, value) => {
    const { target } = await pool.start(
      fromNodeListener((req, res) => {
        res.setHeader('X-Echo', String(req.headers['x-echo']));
        res.end('echoed');
      }),
    );
    const ex = await exchange(target, request(value));
    expect(ex.data.toString()).toMatch(/^Status: 500 /);
    expectNoInjection(ex.data);
  });

  it.each(evil)('scgi/fetch: a Response header with a %s value from the Request: nothing injected', async (_what, value) => {
    const { target } = await pool.start(fromFetch((req) => new Response('echoed', { headers: { 'X-Echo': req.headers.get('x-echo') ?? '' } })));
    const ex = await exchange(target, request(value));
    // The WHATWG Headers class strips leading/trailing whitespace and throws on
    // CR/LF/NUL inside a value: the request reaches the app without the header
    // or the app throws; either way nothing is injected.
    expectNoInjection(ex.data);
    expect(ex.data.toString()).toMatch(/^Status: (200|400|500) /);
  });
});
