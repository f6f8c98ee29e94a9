// DESIGN §4 against a live server, over a raw unix socket: every bad-input case
// gets its documented outcome, no exception reaches the process, no connection
// is left open, a normal request is served right after, and 2000 bad requests
// leave the heap where it was. (test/server.test.ts has the basic cases; this
// is the thorough one.)
import { describe, expect, it } from 'vitest';
import { createServer as netCreateServer } from 'node:net';
import type { ScgiError, ScgiErrorCode } from '../../src/errors.ts';
import type { Handler, ServeOptions } from '../../src/index.ts';
import { encodeRequest } from '../../src/client/request.ts';
import { parse, CODE_NAMES, OUT_CL_HIGH, OUT_CL_LOW, OUT_CODE, Status, outSize } from '../../src/parser/index.ts';
import { block, exchange, netstring, scgiRequest, waitFor, type Target, testServers } from '../helpers.ts';
import { gc, noConnectionsLeft, spyOnProcessErrors } from './util.ts';

spyOnProcessErrors();
const pool = testServers({ onError: () => {} }, 'scgi-bad-');

/** A handler that counts its calls, reads the body, and answers with what it saw. */
function recorder() {
  const seen: { uri: string | undefined; contentLength: number; body: number; error: string | null }[] = [];
  const handler: Handler = async (headers, client) => {
    const rec = { uri: headers.get('REQUEST_URI'), contentLength: headers.contentLength, body: 0, error: null as string | null };
    seen.push(rec);
    try {
      for await (const c of client) rec.body += (c as Buffer).length;
    } catch (err) {
      rec.error = (err as ScgiError).code;
      return;
    }
    client.writeHead(200, { 'X-Body': String(rec.body) });
    client.end(`ok ${rec.uri}`);
  };
  return { seen, handler };
}

async function startRecorded(options: ServeOptions = {}) {
  const rec = recorder();
  const { server, target } = await pool.start(rec.handler, options);
  const codes: string[] = [];
  server.on('clientError', (err: ScgiError) => codes.push(err.code));
  return { ...rec, server, target, codes };
}

/** After a bad case: no connection left, and a normal request is served. */
async function nextRequestServed(s: Awaited<ReturnType<typeof startRecorded>>) {
  await noConnectionsLeft(s.server);
  const before = s.seen.length;
  const res = await scgiRequest(s.target, { uri: '/next', body: 'abc' });
  expect(res.status).toBe(200);
  expect(res.body.toString()).toBe('ok /next');
  expect(res.headers['x-body']).toBe('3');
  expect(s.seen.length).toBe(before + 1);
  await noConnectionsLeft(s.server);
}

const cl = (value: string, extra: [string, string][] = [['SCGI', '1']]) => netstring(block([['CONTENT_LENGTH', value], ...extra]));

interface Rejected {
  what: string;
  bytes: Buffer | Buffer[];
  code: ScgiErrorCode;
  options?: ServeOptions;
  end?: boolean;
}

const rejected: Rejected[] = [
  // netstring length
  { what: 'length not digits', bytes: Buffer.from('abc:'), code: 'ERR_SCGI_BAD_NETSTRING' },
  { what: 'length empty (":" first)', bytes: Buffer.from(':CONTENT_LENGTH\x000\x00,'), code: 'ERR_SCGI_BAD_NETSTRING' },
  { what: 'length with a sign', bytes: Buffer.from('+17:'), code: 'ERR_SCGI_BAD_NETSTRING' },
  { what: 'length with a space', bytes: Buffer.from('17 :'), code: 'ERR_SCGI_BAD_NETSTRING' },
  { what: 'length leading zero', bytes: Buffer.from('017:'), code: 'ERR_SCGI_BAD_NETSTRING' },
  { what: 'length "00"', bytes: Buffer.from('00:,'), code: 'ERR_SCGI_BAD_NETSTRING' },
  {
    what: 'length of 8 digits (maxHeaderSize at its maximum)',
    bytes: Buffer.from('10000000:'),
    code: 'ERR_SCGI_BAD_NETSTRING',
    options: { maxHeaderSize: 9_999_999 },
  },
  { what: 'length 10^15', bytes: Buffer.from('1000000000000000:'), code: 'ERR_SCGI_HEADER_TOO_LARGE' },
  { what: 'length 10^15 sent one digit at a time', bytes: [...'1000000000000000:'].map((c) => Buffer.from(c)), code: 'ERR_SCGI_HEADER_TOO_LARGE' },
  { what: 'length above maxHeaderSize by one', bytes: Buffer.from('65537:'), code: 'ERR_SCGI_HEADER_TOO_LARGE' },
  { what: 'missing ":"', bytes: Buffer.from('17CONTENT_LENGTH\x000\x00,'), code: 'ERR_SCGI_BAD_NETSTRING' },
  { what: 'HTTP on the SCGI socket', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), code: 'ERR_SCGI_BAD_NETSTRING' },
  // block structure
  { what: 'missing ","', bytes: Buffer.concat([Buffer.from('17:'), block([['CONTENT_LENGTH', '0']]), Buffer.from(';')]), code: 'ERR_SCGI_BAD_NETSTRING' },
  { what: 'empty block', bytes: Buffer.from('0:,'), code: 'ERR_SCGI_MISSING_CONTENT_LENGTH' },
  { what: 'odd field count', bytes: netstring('CONTENT_LENGTH\x000\x00SCGI\x00'), code: 'ERR_SCGI_BAD_HEADERS' },
  { what: 'empty name', bytes: netstring('CONTENT_LENGTH\x000\x00\x001\x00'), code: 'ERR_SCGI_BAD_HEADERS' },
  { what: 'block not NUL-terminated', bytes: netstring('CONTENT_LENGTH\x000\x00SCGI\x001'), code: 'ERR_SCGI_BAD_HEADERS' },
  { what: 'block of NULs only', bytes: netstring(Buffer.alloc(32, 0)), code: 'ERR_SCGI_BAD_HEADERS' },
  { what: 'block of 0xFF only', bytes: netstring(Buffer.alloc(32, 0xff)), code: 'ERR_SCGI_BAD_HEADERS' },
  {
    what: 'more pairs than maxHeadersCount',
    bytes: netstring(block([['CONTENT_LENGTH', '0'], ...Array.from({ length: 32 }, (_, i) => [`H${i}`, 'v'] as [string, string])])),
    code: 'ERR_SCGI_TOO_MANY_HEADERS',
    options: { maxHeadersCount: 32 },
  },
  // CONTENT_LENGTH
  {
    what: 'first pair not CONTENT_LENGTH',
    bytes: netstring(
      block([
        ['SCGI', '1'],
        ['CONTENT_LENGTH', '0'],
      ]),
    ),
    code: 'ERR_SCGI_MISSING_CONTENT_LENGTH',
  },
  { what: 'content_length in lower case', bytes: netstring(block([['content_length', '0']])), code: 'ERR_SCGI_MISSING_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH with 0xFF in its name', bytes: netstring(block([['CONTENT_LENGT\xff', '0']])), code: 'ERR_SCGI_MISSING_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH empty', bytes: cl(''), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH -1', bytes: cl('-1'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH 1e3', bytes: cl('1e3'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH 0x10', bytes: cl('0x10'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH +5', bytes: cl('+5'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH " 5"', bytes: cl(' 5'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH "5 "', bytes: cl('5 '), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH 1.0', bytes: cl('1.0'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH with a 0xFF byte', bytes: cl('1\xff'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH 2^53 (9007199254740992)', bytes: cl('9007199254740992'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH 2^53+1 (9007199254740993)', bytes: cl('9007199254740993'), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  { what: 'CONTENT_LENGTH of 30 digits', bytes: cl('9'.repeat(30)), code: 'ERR_SCGI_BAD_CONTENT_LENGTH' },
  // strict mode
  {
    what: 'strict: a repeated name',
    bytes: cl('0', [
      ['SCGI', '1'],
      ['HTTP_X', 'a'],
      ['HTTP_X', 'b'],
    ]),
    code: 'ERR_SCGI_DUPLICATE_HEADER',
    options: { strict: true },
  },
  { what: 'strict: no SCGI pair', bytes: cl('0', [['REQUEST_URI', '/']]), code: 'ERR_SCGI_MISSING_SCGI', options: { strict: true } },
  { what: 'strict: SCGI=2', bytes: cl('0', [['SCGI', '2']]), code: 'ERR_SCGI_MISSING_SCGI', options: { strict: true } },
  // the peer gives up in the header
  { what: 'header cut short, then EOF', bytes: encodeRequest({}).subarray(0, 20), code: 'ERR_SCGI_INCOMPLETE_HEADER', end: true },
  { what: 'length digits only, then EOF', bytes: Buffer.from('64'), code: 'ERR_SCGI_INCOMPLETE_HEADER', end: true },
];

describe('rejected: closed without a handler call, counted, the next request served', () => {
  for (const c of rejected) {
    it(`${c.what} → ${c.code}`, async () => {
      const s = await startRecorded(c.options);
      const ex = await exchange(s.target, c.bytes, { end: c.end });
      expect(ex.closed).toBe(true);
      expect(ex.data.length).toBe(0);
      expect(s.seen).toEqual([]);
      expect(s.codes).toEqual([c.code]);
      expect(s.server.stats).toMatchObject({ rejected: 1, requests: 0, errors: 0 });
      await nextRequestServed(s);
    });
  }
});

describe('accepted by the grammar (CONTENT_LENGTH = 1*DIGIT, name/value = %x01-FF)', () => {
  const accepted: [string, Buffer, { contentLength: number; body: number }][] = [
    [
      'CONTENT_LENGTH "00" is 0',
      cl('00', [
        ['SCGI', '1'],
        ['REQUEST_URI', '/00'],
      ]),
      { contentLength: 0, body: 0 },
    ],
    [
      'CONTENT_LENGTH "007" is 7',
      Buffer.concat([
        cl('007', [
          ['SCGI', '1'],
          ['REQUEST_URI', '/007'],
        ]),
        Buffer.from('1234567'),
      ]),
      { contentLength: 7, body: 7 },
    ],
    [
      'CONTENT_LENGTH with 20 leading zeros',
      Buffer.concat([
        cl('0'.repeat(20) + '3', [
          ['SCGI', '1'],
          ['REQUEST_URI', '/z'],
        ]),
        Buffer.from('abc'),
      ]),
      { contentLength: 3, body: 3 },
    ],
    [
      '0xFF bytes in a name and a value',
      cl('0', [
        ['SCGI', '1'],
        ['REQUEST_URI', '/ff'],
        ['HTTP_\xff\xff', '\xff\xfe\x01'],
      ]),
      { contentLength: 0, body: 0 },
    ],
    [
      'NUL and 0xFF bytes in the body',
      Buffer.concat([
        cl('6', [
          ['SCGI', '1'],
          ['REQUEST_URI', '/nb'],
        ]),
        Buffer.from([0, 0xff, 0, 0xff, 0, 0xff]),
      ]),
      { contentLength: 6, body: 6 },
    ],
    [
      'empty values',
      cl('0', [
        ['SCGI', '1'],
        ['REQUEST_URI', '/ev'],
        ['QUERY_STRING', ''],
      ]),
      { contentLength: 0, body: 0 },
    ],
    [
      'a repeated name (nginx does it)',
      cl('0', [
        ['SCGI', '1'],
        ['REQUEST_URI', '/dup'],
        ['HTTP_X', 'a'],
        ['HTTP_X', 'b'],
      ]),
      { contentLength: 0, body: 0 },
    ],
    ['no SCGI pair (nginx without scgi_params)', cl('0', [['REQUEST_URI', '/noscgi']]), { contentLength: 0, body: 0 }],
  ];
  for (const [what, bytes, want] of accepted) {
    it(what, async () => {
      const s = await startRecorded();
      const ex = await exchange(s.target, bytes);
      expect(ex.data.toString('latin1')).toMatch(/^Status: 200 OK\r\n/);
      expect(s.seen).toHaveLength(1);
      expect(s.seen[0]).toMatchObject({ ...want, error: null });
      expect(s.codes).toEqual([]);
      expect(s.server.stats.rejected).toBe(0);
      await nextRequestServed(s);
    });
  }

  it('0xFF in a value reaches the handler as latin1, raw bytes intact', async () => {
    let got: [string | undefined, Buffer] | undefined;
    const { target, server } = await pool.start((h, c) => {
      got = [h.get('HTTP_X'), h.rawValue([...h.keys()].indexOf('HTTP_X'))];
      c.end('Status: 204 No Content\r\n\r\n');
    });
    await exchange(target, cl('0', [['HTTP_X', '\xff\x01\xfe']]));
    expect(got![0]).toBe('\xff\x01\xfe');
    expect([...got![1]]).toEqual([0xff, 0x01, 0xfe]);
    await noConnectionsLeft(server);
  });
});

describe('limits and bodies', () => {
  it('CONTENT_LENGTH over maxBodySize → Status: 413 (the body, sent anyway, is drained: no reset)', async () => {
    const s = await startRecorded({ maxBodySize: 1000 });
    const ex = await exchange(s.target, encodeRequest({ body: Buffer.alloc(1024 * 1024, 'x') }), { timeout: 10_000 });
    expect(ex.error).toBe(null);
    expect(ex.data.toString()).toMatch(/^Status: 413 /);
    expect(s.seen).toEqual([]);
    expect(s.codes).toEqual(['ERR_SCGI_BODY_TOO_LARGE']);
    expect(s.server.stats.rejected).toBe(1);
    await nextRequestServed(s);
  });

  it('CONTENT_LENGTH 2^53-1 over maxBodySize → 413 without waiting for a body', async () => {
    const s = await startRecorded({ maxBodySize: 1 << 20 });
    const ex = await exchange(s.target, cl('9007199254740991'));
    expect(ex.data.toString()).toMatch(/^Status: 413 /);
    expect(s.codes).toEqual(['ERR_SCGI_BODY_TOO_LARGE']);
    await nextRequestServed(s);
  });

  it('CONTENT_LENGTH 2^53-1 (the largest accepted) and a short body, then EOF: ERR_SCGI_BODY_TRUNCATED on the body stream', async () => {
    const s = await startRecorded();
    const ex = await exchange(
      s.target,
      [
        cl('9007199254740991', [
          ['SCGI', '1'],
          ['REQUEST_URI', '/huge'],
        ]),
        Buffer.alloc(10),
      ],
      { end: true },
    );
    expect(ex.closed).toBe(true);
    await waitFor(() => s.seen[0]?.error != null);
    expect(s.seen).toEqual([{ uri: '/huge', contentLength: 9007199254740991, body: 10, error: 'ERR_SCGI_BODY_TRUNCATED' }]);
    await nextRequestServed(s);
  });

  it('body shorter than CONTENT_LENGTH, then EOF: ERR_SCGI_BODY_TRUNCATED, nothing answered, no crash', async () => {
    const s = await startRecorded();
    const bytes = encodeRequest({ uri: '/short', body: Buffer.alloc(5000, 'b') });
    const ex = await exchange(s.target, bytes.subarray(0, bytes.length - 1000), { end: true });
    expect(ex.data.length).toBe(0);
    await waitFor(() => s.seen[0]?.error != null);
    expect(s.seen).toEqual([{ uri: '/short', contentLength: 5000, body: 4000, error: 'ERR_SCGI_BODY_TRUNCATED' }]);
    await nextRequestServed(s);
  });

  it('a truncated body the handler never reads: the stream error is not unhandled', async () => {
    let ignored: import('../../src/index.ts').ScgiClient | undefined;
    const { target, server } = await pool.start((h, c) => {
      if (h.get('REQUEST_URI') === '/ignore')
        ignored = c; // never reads, never answers
      else c.end('Status: 200 OK\r\n\r\nok');
    });
    const bytes = encodeRequest({ uri: '/ignore', body: Buffer.alloc(100) });
    await exchange(target, bytes.subarray(0, bytes.length - 50), { end: true });
    await noConnectionsLeft(server);
    expect(ignored!.destroyed).toBe(true);
    expect((await scgiRequest(target, {})).status).toBe(200);
  });

  it('bytes after the body (a whole second request) are drained, never parsed as a request', async () => {
    const s = await startRecorded();
    const second = encodeRequest({ uri: '/smuggled' });
    const ex = await exchange(s.target, Buffer.concat([encodeRequest({ uri: '/first', body: 'xy' }), second, Buffer.from('garbage\0\xff')]));
    expect(ex.error).toBe(null);
    expect(ex.data.toString()).toBe('Status: 200 OK\r\nX-Body: 2\r\nContent-Length: 9\r\n\r\nok /first');
    expect(s.seen.map((r) => r.uri)).toEqual(['/first']);
    expect(s.server.stats.requests).toBe(1);
    await nextRequestServed(s);
  });

  it('an empty connection (Apache after its own 411) is a quiet close: not rejected, no clientError', async () => {
    const s = await startRecorded();
    const ex = await exchange(s.target, Buffer.alloc(0), { end: true });
    expect(ex.closed).toBe(true);
    expect(s.codes).toEqual([]);
    expect(s.server.stats.rejected).toBe(0);
    await nextRequestServed(s);
  });

  it('a 10 MB header length with 10 MB sent: refused at maxHeaderSize after reading a small part of it', async () => {
    let received = 0;
    const rec = recorder();
    const { server, target } = await pool.start(rec.handler, {
      createServer: (onConnection) =>
        netCreateServer({ allowHalfOpen: true }, (socket) => {
          socket.on('data', (c: Buffer) => (received += c.length));
          onConnection(socket);
        }),
    });
    const codes: string[] = [];
    server.on('clientError', (e: ScgiError) => codes.push(e.code));
    const size = 10 * 1024 * 1024;
    const ex = await exchange(target, [Buffer.from(`${size}:`), Buffer.alloc(size, 'a')], { timeout: 10_000 });
    expect(ex.closed).toBe(true);
    expect(ex.data.length).toBe(0);
    expect(codes).toEqual(['ERR_SCGI_HEADER_TOO_LARGE']);
    // Closed at the length digits: at most what one or two socket reads held.
    expect(received).toBeLessThan(1024 * 1024);
    expect(rec.seen).toEqual([]);
    await noConnectionsLeft(server);
    expect((await scgiRequest(target, {})).status).toBe(200);
  });

  it('a header block one byte under maxHeaderSize, sent slowly in pieces, is accepted', async () => {
    const s = await startRecorded({ maxHeaderSize: 4096 });
    const pairs: [string, string][] = [
      ['CONTENT_LENGTH', '0'],
      ['SCGI', '1'],
      ['REQUEST_URI', '/big'],
      ['HTTP_X', ''],
    ];
    const base = block(pairs).length;
    pairs[3] = ['HTTP_X', 'v'.repeat(4095 - base)];
    const bytes = netstring(block(pairs));
    const pieces = [];
    for (let i = 0; i < bytes.length; i += 500) pieces.push(bytes.subarray(i, i + 500));
    const ex = await exchange(s.target, pieces, { delay: 5 });
    expect(ex.data.toString()).toMatch(/^Status: 200 OK/);
    expect(s.seen.map((r) => r.uri)).toEqual(['/big']);
    await nextRequestServed(s);
  });
});

describe('NULs and 0xFF bytes everywhere', () => {
  it('each byte of a request replaced by 0x00 and by 0xFF: the server does what the parser says, and nothing else', async () => {
    const s = await startRecorded({ maxHeadersCount: 100 });
    const base = encodeRequest({ uri: '/m', headers: { 'X-A': 'b' }, body: 'BODY' });
    const out = new Uint32Array(outSize(100));
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < base.length; i++) {
      for (const byte of [0x00, 0xff]) {
        if (base[i] === byte) continue;
        const bytes = Buffer.from(base);
        bytes[i] = byte;
        const status = parse(bytes, out, 65536, 100, 0);
        const codesBefore = s.codes.length;
        const seenBefore = s.seen.length;
        // A mutation in the length digits can leave the parser waiting for
        // more: the peer then closes (EOF), an incomplete header.
        const ex = await exchange(s.target, bytes, { end: status === Status.Partial });
        expect(ex.closed).toBe(true);
        if (status === Status.Complete) {
          accepted++;
          const cl = out[OUT_CL_HIGH]! * 2 ** 32 + out[OUT_CL_LOW]!;
          expect(s.seen.length, `byte ${i} = ${byte}`).toBe(seenBefore + 1);
          if (cl <= bytes.length) expect(ex.data.toString('latin1'), `byte ${i} = ${byte}`).toMatch(/^Status: 200 OK\r\n/);
          expect(s.codes.length).toBe(codesBefore);
        } else {
          refused++;
          const want = status === Status.Error ? CODE_NAMES[out[OUT_CODE]!] : 'ERR_SCGI_INCOMPLETE_HEADER';
          expect(s.seen.length, `byte ${i} = ${byte}`).toBe(seenBefore);
          expect(ex.data.length).toBe(0);
          expect(s.codes.slice(codesBefore), `byte ${i} = ${byte}`).toEqual([want]);
        }
      }
    }
    expect(accepted).toBeGreaterThan(10); // 0xFF inside names and values, and any byte of the body
    expect(refused).toBeGreaterThan(100);
    await nextRequestServed(s);
  });

  it('random NUL/0xFF/digit/":"/"," soup: always closed or served, never a hang or a crash', async () => {
    const s = await startRecorded();
    const alphabet = [0x00, 0xff, 0x30, 0x31, 0x39, 0x3a, 0x2c];
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let k = 0; k < 200; k++) {
      const bytes = Buffer.from(Array.from({ length: 1 + rand(40) }, () => alphabet[rand(alphabet.length)]!));
      const ex = await exchange(s.target, bytes, { end: true, timeout: 5000 });
      expect(ex.closed).toBe(true);
    }
    await nextRequestServed(s);
  });
});

describe('memory', () => {
  it('2000 bad requests: heap back near its baseline, no connection left', async () => {
    const { server, target } = await pool.start((_h, c) => c.end('Status: 200 OK\r\n\r\nok'), { maxBodySize: 100 });
    const bad: { bytes: Buffer | Buffer[]; end?: boolean }[] = [
      ...rejected.filter((c) => c.options === undefined),
      { bytes: encodeRequest({ body: Buffer.alloc(200) }) }, // 413
      { bytes: encodeRequest({ body: Buffer.alloc(50) }).subarray(0, -20), end: true }, // truncated body
    ];
    let sent = 0;
    let expectRejected = 0;
    const run = async (count: number) => {
      let next = 0;
      for (let i = 0; i < count; i++) if ((sent + i) % bad.length !== bad.length - 1) expectRejected++;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < count) {
            const c = bad[(sent + next++) % bad.length]!;
            await exchange(target as Target, c.bytes, { end: c.end });
          }
        }),
      );
      sent += count;
    };
    await run(300); // warm up (JIT, pools)
    await noConnectionsLeft(server);
    gc();
    const before = process.memoryUsage();
    await run(2000);
    await noConnectionsLeft(server);
    gc();
    const after = process.memoryUsage();
    const growth = after.heapUsed - before.heapUsed;
    const external = after.arrayBuffers - before.arrayBuffers;
    // A leaked Connection + socket + buffers is several KB: 2000 of them would be
    // well over 4 MB. The margin covers vitest's own allocations meanwhile.
    console.log(`memory after 2000 bad requests: heapUsed ${growth >= 0 ? '+' : ''}${growth} B, arrayBuffers ${external >= 0 ? '+' : ''}${external} B`);
    expect(growth, `heapUsed grew ${growth} bytes`).toBeLessThan(4 * 1024 * 1024);
    expect(external, `arrayBuffers grew ${external} bytes`).toBeLessThan(2 * 1024 * 1024);
    expect(server.stats.rejected).toBe(expectRejected);
    expect((await scgiRequest(target, {})).status).toBe(200);
  });
});
