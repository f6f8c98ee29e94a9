import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import {
  Code,
  CODE_NAMES,
  FLAG_STRICT,
  KNOWN_NAMES,
  NO_INDEX,
  OUT_CL_HIGH,
  OUT_CL_LOW,
  OUT_CODE,
  OUT_HEADER_END,
  OUT_PAIR_COUNT,
  OUT_PAIRS,
  OUT_SCGI_INDEX,
  PAIR_STRIDE,
  Status,
  outSize,
  type ParserBackend,
} from '../src/parser/types.ts';
import { backends } from './backends.ts';
import { loadAddon } from '../src/parser/native.ts';
import { block, fixture, netstring, vectors } from './helpers.ts';

const MAX = 65536;
const COUNT = 2000;

interface Result {
  status: number;
  code: string;
  headerEnd: number;
  contentLength: number;
  scgiIndex: number;
  pairs: [string, string][];
  ids: number[];
}

function run(p: ParserBackend, buf: Buffer, opts: { max?: number; count?: number; strict?: boolean } = {}): Result {
  const out = new Uint32Array(outSize(opts.count ?? COUNT));
  const status = p.parse(buf, out, opts.max ?? MAX, opts.count ?? COUNT, opts.strict ? FLAG_STRICT : 0);
  const r: Result = { status, code: CODE_NAMES[out[OUT_CODE]!]!, headerEnd: out[OUT_HEADER_END]!, contentLength: -1, scgiIndex: -1, pairs: [], ids: [] };
  if (status === Status.Complete) {
    r.contentLength = out[OUT_CL_HIGH]! * 2 ** 32 + out[OUT_CL_LOW]!;
    r.scgiIndex = out[OUT_SCGI_INDEX]!;
    for (let i = 0; i < out[OUT_PAIR_COUNT]!; i++) {
      const o = OUT_PAIRS + i * PAIR_STRIDE;
      r.pairs.push([buf.toString('utf8', out[o]!, out[o + 1]!), buf.toString('utf8', out[o + 2]!, out[o + 3]!)]);
      r.ids.push(out[o + 4]!);
    }
  }
  return r;
}

const req = (pairs: [string, string][], body = '') => Buffer.concat([netstring(block(pairs)), Buffer.from(body)]);
const CL = (v: string): [string, string] => ['CONTENT_LENGTH', v];
const SCGI: [string, string] = ['SCGI', '1'];

describe.each(backends.map((b) => [b.name, b] as const))('parser (%s)', (_name, p) => {
  describe('captured vectors', () => {
    for (const v of vectors) {
      it(`${v.file}`, () => {
        const buf = fixture(v.file);
        const r = run(p, buf);
        if (v.pairs === null) {
          // apache-tcp-chunked.bin: Apache opened the connection and sent nothing.
          expect(buf.length).toBe(0);
          expect(r.status).toBe(Status.Partial);
          expect(r.headerEnd).toBe(0);
          return;
        }
        expect(r.status).toBe(Status.Complete);
        expect(r.pairs).toEqual(v.pairs);
        expect(String(r.contentLength)).toBe(v.contentLength);
        const body = buf.subarray(r.headerEnd, r.headerEnd + r.contentLength);
        expect(body.length).toBe(Number(v.contentLength));
        if (v.bodyBytes === Number(v.contentLength)) {
          expect(createHash('sha256').update(body).digest('hex')).toBe(v.bodySha256);
        }
        // names the table knows come back as ids
        for (const [i, [name]] of r.pairs.entries()) expect(r.ids[i]).toBe(Math.max(0, KNOWN_NAMES.indexOf(name as never)));
        const scgiAt = v.pairs.findIndex(([n]) => n === 'SCGI');
        expect(r.scgiIndex).toBe(scgiAt === -1 ? NO_INDEX : scgiAt);
      });
    }
  });

  it('gives the same result at every split point (incremental input)', () => {
    for (const file of ['nginx-tcp-get.bin', 'apache-tcp-post5.bin', 'lighttpd-tcp-get.bin', 'nginx-noparams-post5.bin']) {
      const buf = fixture(file);
      const whole = run(p, buf);
      expect(whole.status).toBe(Status.Complete);
      for (let k = 0; k < whole.headerEnd; k++) {
        const r = run(p, buf.subarray(0, k));
        expect(r.status, `${file} prefix ${k}`).toBe(Status.Partial);
        // once the length prefix is read, the parser says how many bytes it needs
        if (r.headerEnd !== 0) expect(r.headerEnd).toBe(whole.headerEnd);
      }
      for (let k = whole.headerEnd; k <= buf.length; k++) {
        expect(run(p, buf.subarray(0, k))).toEqual(whole);
      }
    }
  });

  it('an error on a prefix stays the same error as bytes arrive', () => {
    const bad = Buffer.from('12x:CONTENT_LENGTH\x000\x00,');
    for (let k = 3; k <= bad.length; k++) expect(run(p, bad.subarray(0, k)).code).toBe('ERR_SCGI_BAD_NETSTRING');
  });

  describe('netstring length (DESIGN §4)', () => {
    const cases: [string, string, string][] = [
      ['not digits', 'x:', 'ERR_SCGI_BAD_NETSTRING'],
      ['colon first', ':', 'ERR_SCGI_BAD_NETSTRING'],
      ['space', ' 5:', 'ERR_SCGI_BAD_NETSTRING'],
      ['sign', '+5:', 'ERR_SCGI_BAD_NETSTRING'],
      ['leading zero', '05:', 'ERR_SCGI_BAD_NETSTRING'],
      ['more than 7 digits', '00000000', 'ERR_SCGI_BAD_NETSTRING'],
      ['missing colon', '24,', 'ERR_SCGI_BAD_NETSTRING'],
      ['over maxHeaderSize', '65537:', 'ERR_SCGI_HEADER_TOO_LARGE'],
      ['10^15', '1000000000000000:', 'ERR_SCGI_HEADER_TOO_LARGE'],
      ['10 MB', '10485760:', 'ERR_SCGI_HEADER_TOO_LARGE'],
    ];
    for (const [what, input, code] of cases) {
      it(`${what}: ${code}`, () => {
        const r = run(p, Buffer.from(input, 'latin1'));
        expect(r.status).toBe(Status.Error);
        expect(r.code).toBe(code);
      });
    }

    it('refuses a too-large length before the block arrives (no buffering)', () => {
      // "65537" is already over 64 KiB after its fifth digit.
      expect(run(p, Buffer.from('65537')).code).toBe('ERR_SCGI_HEADER_TOO_LARGE');
      expect(run(p, Buffer.from('6553')).status).toBe(Status.Partial);
      expect(run(p, Buffer.from('99'), { max: 50 }).code).toBe('ERR_SCGI_HEADER_TOO_LARGE');
    });

    it('accepts a length equal to maxHeaderSize', () => {
      const b = block([CL('0'), ['X', 'y'.repeat(100)]]);
      expect(run(p, netstring(b), { max: b.length }).status).toBe(Status.Complete);
      expect(run(p, netstring(b), { max: b.length - 1 }).code).toBe('ERR_SCGI_HEADER_TOO_LARGE');
    });

    it('says how many bytes it needs once the length is known', () => {
      const r = run(p, Buffer.from('100:CONT'));
      expect(r.status).toBe(Status.Partial);
      expect(r.headerEnd).toBe(105);
      expect(run(p, Buffer.from('100')).headerEnd).toBe(0);
    });
  });

  describe('header block (DESIGN §4)', () => {
    const cases: [string, Buffer, string][] = [
      ['missing comma', Buffer.concat([Buffer.from('17:'), block([CL('0')]), Buffer.from(';')]), 'ERR_SCGI_BAD_NETSTRING'],
      ['empty block', Buffer.from('0:,'), 'ERR_SCGI_MISSING_CONTENT_LENGTH'],
      ['odd field count', netstring('CONTENT_LENGTH\x000\x00SCGI\x00'), 'ERR_SCGI_BAD_HEADERS'],
      ['not NUL-terminated', netstring('CONTENT_LENGTH\x000\x00SCGI\x001'), 'ERR_SCGI_BAD_HEADERS'],
      ['no NUL at all', netstring('CONTENT_LENGTH'), 'ERR_SCGI_BAD_HEADERS'],
      ['empty name', netstring('CONTENT_LENGTH\x000\x00\x00x\x00'), 'ERR_SCGI_BAD_HEADERS'],
      ['empty first name', netstring('\x000\x00'), 'ERR_SCGI_BAD_HEADERS'],
      ['CONTENT_LENGTH not first', req([SCGI, CL('0')]), 'ERR_SCGI_MISSING_CONTENT_LENGTH'],
      ['CONTENT_LENGTH lower case', req([['content_length', '0']]), 'ERR_SCGI_MISSING_CONTENT_LENGTH'],
      ['CONTENT_LENGTH empty', req([CL('')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
      ['CONTENT_LENGTH -1', req([CL('-1')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
      ['CONTENT_LENGTH 1e3', req([CL('1e3')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
      ['CONTENT_LENGTH 0x10', req([CL('0x10')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
      ['CONTENT_LENGTH " 5"', req([CL(' 5')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
      ['CONTENT_LENGTH 2^53+1', req([CL('9007199254740993')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
      ['CONTENT_LENGTH 2^53', req([CL('9007199254740992')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
      ['CONTENT_LENGTH with 0xff', req([CL('1\xff')]), 'ERR_SCGI_BAD_CONTENT_LENGTH'],
    ];
    for (const [what, input, code] of cases) {
      it(`${what}: ${code}`, () => {
        const r = run(p, input);
        expect(r.status).toBe(Status.Error);
        expect(r.code).toBe(code);
        // same in strict mode
        expect(run(p, input, { strict: true }).code).toBe(code);
      });
    }

    it('CONTENT_LENGTH up to 2^53-1, leading zeros allowed (the grammar is 1*DIGIT)', () => {
      expect(run(p, req([CL('9007199254740991')])).contentLength).toBe(Number.MAX_SAFE_INTEGER);
      expect(run(p, req([CL('4294967296')])).contentLength).toBe(2 ** 32);
      expect(run(p, req([CL('00')])).contentLength).toBe(0);
      expect(run(p, req([CL('007')])).contentLength).toBe(7);
    });

    it('NUL and 0xff bytes in values and names are data', () => {
      const r = run(p, req([CL('0'), ['\xff\x01', '\xff\xfe'], ['X', '']]));
      expect(r.status).toBe(Status.Complete);
      expect(r.pairs.length).toBe(3);
    });

    it('maxHeadersCount', () => {
      const pairs: [string, string][] = [CL('0'), ['A', '1'], ['B', '2']];
      expect(run(p, req(pairs), { count: 3 }).status).toBe(Status.Complete);
      expect(run(p, req(pairs), { count: 2 }).code).toBe('ERR_SCGI_TOO_MANY_HEADERS');
    });

    it('a header block only as large as needed, body bytes after it untouched', () => {
      const buf = req([CL('5'), SCGI], 'hello, more, 99:junk');
      const r = run(p, buf);
      expect(r.status).toBe(Status.Complete);
      expect(buf.toString('latin1', r.headerEnd, r.headerEnd + r.contentLength)).toBe('hello');
    });
  });

  describe('default mode vs strict', () => {
    const dup = req([CL('0'), SCGI, ['HTTP_X_DUP', 'one'], ['HTTP_X_DUP', 'two']]);
    const dupKnown = req([CL('0'), SCGI, ['HTTP_COOKIE', 'a=1'], ['HTTP_COOKIE', 'b=2']]);
    const noScgi = req([CL('0'), ['REQUEST_METHOD', 'GET']]);

    it('accepts duplicates and a missing SCGI by default (nginx sends both)', () => {
      expect(run(p, dup).pairs.slice(2)).toEqual([
        ['HTTP_X_DUP', 'one'],
        ['HTTP_X_DUP', 'two'],
      ]);
      expect(run(p, dupKnown).status).toBe(Status.Complete);
      const r = run(p, noScgi);
      expect(r.status).toBe(Status.Complete);
      expect(r.scgiIndex).toBe(NO_INDEX);
    });

    it('strict rejects duplicates (known and unknown names) and a missing or wrong SCGI', () => {
      expect(run(p, dup, { strict: true }).code).toBe('ERR_SCGI_DUPLICATE_HEADER');
      expect(run(p, dupKnown, { strict: true }).code).toBe('ERR_SCGI_DUPLICATE_HEADER');
      expect(run(p, req([CL('0'), SCGI, CL('0')]), { strict: true }).code).toBe('ERR_SCGI_DUPLICATE_HEADER');
      expect(run(p, noScgi, { strict: true }).code).toBe('ERR_SCGI_MISSING_SCGI');
      expect(run(p, req([CL('0'), ['SCGI', '2']]), { strict: true }).code).toBe('ERR_SCGI_MISSING_SCGI');
      expect(run(p, req([CL('0'), ['SCGI', '']]), { strict: true }).code).toBe('ERR_SCGI_MISSING_SCGI');
      expect(run(p, req([CL('0'), ['SCGI', '1']]), { strict: true }).status).toBe(Status.Complete);
      // names differing only in case are different names
      expect(run(p, req([CL('0'), SCGI, ['X', '1'], ['x', '2']]), { strict: true }).status).toBe(Status.Complete);
    });

    it('strict accepts every captured vector that has SCGI=1 and no duplicate', () => {
      for (const v of vectors) {
        if (v.pairs === null) continue;
        const names = v.pairs.map(([n]) => n);
        const ok = names.includes('SCGI') && new Set(names).size === names.length;
        const r = run(p, fixture(v.file), { strict: true });
        expect(r.status === Status.Complete, v.file).toBe(ok);
      }
    });
  });

  it('the numeric codes are the ERR_SCGI_* table', () => {
    expect(CODE_NAMES[Code.BadNetstring]).toBe('ERR_SCGI_BAD_NETSTRING');
    expect(CODE_NAMES.length).toBe(Object.keys(Code).length);
  });
});

// The addon's argument checks (the TS parser trusts its internal callers and checks nothing).
describe.each(backends.filter((b) => b.name === 'native').map((b) => [b.name, b] as const))('parser (%s) arguments', (_name, p) => {
  const good = req([CL('5'), SCGI], 'hello');
  const parse = (buf: unknown, out: unknown, max: unknown = MAX, count: unknown = 10, flags: unknown = 0) =>
    (p.parse as (...a: unknown[]) => number)(buf, out, max, count, flags);

  it('the addon exports parse (and on Linux the native transport) and nothing else (no benchmark-only functions ship)', () => {
    // The transport's functions: src/transport/native-engine.ts.
    const transport = [
      'transportCreate',
      'transportListenUnix',
      'transportListenTcp',
      'transportAdopt',
      'transportListenSocket',
      'transportRespond',
      'transportWrite',
      'transportControl',
      'transportServer',
      'transportPeer',
      'transportPending',
      'transportConstants',
      'unixListenQueue',
    ];
    expect(Object.keys(loadAddon())).toEqual(['parse', ...(process.platform === 'linux' ? transport : [])]);
    expect(loadAddon().parse).toBe(p.parse);
  });

  it('parses a Uint8Array over an ArrayBuffer (not only a Buffer)', () => {
    const u8 = new Uint8Array(good.length);
    u8.set(good);
    expect(parse(u8, new Uint32Array(outSize(10)))).toBe(Status.Complete);
  });

  it('rejects buf or out over a SharedArrayBuffer with a TypeError (another thread could write the bytes during the parse)', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(good.length));
    shared.set(good);
    const out = new Uint32Array(outSize(10));
    expect(() => parse(shared, out)).toThrow(TypeError);
    expect(() => parse(shared, out)).toThrow(/SharedArrayBuffer/);
    expect(() => parse(good, new Uint32Array(new SharedArrayBuffer(4 * outSize(10))))).toThrow(TypeError);
    expect(out.every((v) => v === 0)).toBe(true);
  });

  it('rejects wrong argument types with a TypeError', () => {
    const out = new Uint32Array(outSize(10));
    expect(() => parse('x', out)).toThrow(TypeError);
    expect(() => parse(new Uint16Array(4), out)).toThrow(TypeError);
    expect(() => parse(good, new Int32Array(outSize(10)))).toThrow(TypeError);
    expect(() => parse(good, out, 'big')).toThrow(TypeError);
    expect(() => (p.parse as (...a: unknown[]) => number)(good, out, MAX, 10)).toThrow(TypeError);
  });

  it('rejects a short out and overlapping buf/out with a RangeError, writing nothing', () => {
    const short = new Uint32Array(outSize(10) - 1);
    expect(() => parse(good, short)).toThrow(RangeError);
    expect(short.every((v) => v === 0)).toBe(true);
    const mem = new ArrayBuffer(4 * outSize(10) + good.length);
    const out = new Uint32Array(mem, 0, outSize(10));
    const overlapping = new Uint8Array(mem, 4 * outSize(10) - 4, good.length);
    expect(() => parse(overlapping, out)).toThrow(RangeError);
    const apart = new Uint8Array(mem, 4 * outSize(10), good.length);
    apart.set(good);
    expect(parse(apart, out)).toBe(Status.Complete);
  });
});
