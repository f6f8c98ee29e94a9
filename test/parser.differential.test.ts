// Differential fuzzing of the two parser backends: the TS reference
// (src/parser/js.ts) and the Rust addon (crates/scgi-napi) must give the same
// status, the same error code, the same `need`, and the same `out` slots, for
// valid requests, mutated real vectors, random bytes, every prefix, both
// modes and random small limits.
//
// The addon must load, or this file fails; the one exception is
// SCGI_PARSER=js (a run that asked not to use the addon) on a machine where it
// is not built: there the properties that need no second parser (errors and
// complete results are stable as bytes are appended) run on the TS parser
// alone. A loadable addon is always tested.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parse as jsParse } from '../src/parser/js.ts';
import { loadNative } from '../src/parser/native.ts';
import {
  FLAG_STRICT,
  KNOWN_NAMES,
  OUT_CODE,
  OUT_HEADER_END,
  OUT_PAIR_COUNT,
  OUT_PAIRS,
  PAIR_STRIDE,
  Status,
  outSize,
  type ParserBackend,
} from '../src/parser/types.ts';

let native: ParserBackend | null = null;
let loadError: unknown = null;
try {
  native = loadNative();
} catch (err) {
  loadError = err;
}
const tsOnly = native === null && process.env.SCGI_PARSER === 'js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
/** Non-empty real vectors, cut to the header plus a few body bytes (mutations should hit the header). */
const vectors: Buffer[] = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.bin'))
  .sort()
  .map((f) => readFileSync(join(FIXTURES, f)))
  .filter((b) => b.length > 0)
  .map((b) => {
    const colon = b.indexOf(0x3a);
    const end = colon + 1 + Number(b.subarray(0, colon).toString('latin1')) + 1;
    return b.subarray(0, Math.min(b.length, end + 8));
  });

const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
const RUNS = Number(process.env.FC_RUNS ?? 5000);

interface Limits {
  maxHeaderSize: number;
  maxHeaders: number;
}

const outs = new Map<number, [Uint32Array, Uint32Array]>();
function outPair(maxHeaders: number): [Uint32Array, Uint32Array] {
  let p = outs.get(maxHeaders);
  if (p === undefined) {
    p = [new Uint32Array(outSize(maxHeaders)), new Uint32Array(outSize(maxHeaders))];
    outs.set(maxHeaders, p);
  }
  return p;
}

function show(buf: Uint8Array): string {
  return JSON.stringify(Buffer.from(buf).toString('latin1'));
}

/** Runs both backends; throws with the input when they disagree. Returns the status. */
function compare(buf: Uint8Array, limits: Limits, flags: number): number {
  const [a, b] = outPair(limits.maxHeaders);
  // Different garbage in each, so a slot one backend forgets to write shows up.
  a.fill(0xaaaaaaaa);
  b.fill(0xaaaaaaaa);
  const sa = jsParse(buf, a, limits.maxHeaderSize, limits.maxHeaders, flags);
  const sb = native!.parse(buf, b, limits.maxHeaderSize, limits.maxHeaders, flags);
  const where = () => `input ${show(buf)} limits ${JSON.stringify(limits)} flags ${flags}`;
  if (sa !== sb) throw new Error(`status js=${sa} native=${sb}; out js=${a.slice(0, 2)} native=${b.slice(0, 2)}; ${where()}`);
  if (a[OUT_CODE] !== b[OUT_CODE]) throw new Error(`OUT_CODE js=${a[OUT_CODE]} native=${b[OUT_CODE]}; ${where()}`);
  if (a[OUT_HEADER_END] !== b[OUT_HEADER_END]) {
    throw new Error(`OUT_HEADER_END js=${a[OUT_HEADER_END]} native=${b[OUT_HEADER_END]}; ${where()}`);
  }
  if (sa === Status.Complete) {
    const end = OUT_PAIRS + a[OUT_PAIR_COUNT]! * PAIR_STRIDE;
    for (let k = 0; k < end; k++) {
      if (a[k] !== b[k]) throw new Error(`out[${k}] js=${a[k]} native=${b[k]}; ${where()}`);
    }
  }
  return sa;
}

/** Both modes. */
function compareBoth(buf: Uint8Array, limits: Limits): void {
  compare(buf, limits, 0);
  compare(buf, limits, FLAG_STRICT);
}

const enc = (s: string) => Buffer.from(s, 'latin1');

// ---- arbitraries ----

const nonNulBytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max, min: 1, max: 255 }).map((u) => Buffer.from(u));

const name = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...KNOWN_NAMES.slice(1)).map(enc) },
  { weight: 2, arbitrary: fc.constantFrom('A', 'B', 'X_DUP', 'HTTP_X', 'scgi', 'SCGI ', 'CONTENT_LENGTH\x01').map(enc) },
  { weight: 2, arbitrary: nonNulBytes(1, 12) },
);

const value = fc.oneof({ weight: 3, arbitrary: nonNulBytes(0, 24) }, { weight: 2, arbitrary: fc.constantFrom('', '1', '0', '01', '11', 'x', '\xff').map(enc) });

const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });

const contentLengthValue = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 100_000 }).map(String) },
  { weight: 2, arbitrary: fc.tuple(fc.nat({ max: 5 }), fc.nat()).map(([z, n]) => '0'.repeat(z) + n) },
  { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(9007199254740991n, 9007199254740992n, 2n ** 32n, 2n ** 53n + 1n), fc.integer({ min: -3, max: 3 }), fc.nat({ max: 3 }))
      .map(([v, d, z]) => '0'.repeat(z) + String(v + BigInt(d))),
  },
  { weight: 2, arbitrary: digits(0, 30) },
  { weight: 1, arbitrary: fc.constantFrom('', '-1', '+1', ' 1', '1 ', '1a', '0x10', '1e3', '１') },
);

const pairArb = fc.tuple(name, value);

/** A pair list that usually starts with CONTENT_LENGTH and may contain SCGI (valid or not). */
const pairsArb = fc
  .tuple(
    fc.oneof({ weight: 9, arbitrary: fc.constant(enc('CONTENT_LENGTH')) }, { weight: 1, arbitrary: name }),
    contentLengthValue.map(enc),
    fc.array(pairArb, { maxLength: 24 }),
    fc.option(fc.tuple(fc.nat(), fc.constantFrom('1', '1', '1', '0', '', '11').map(enc)), { freq: 3 }),
  )
  .map(([clName, cl, rest, scgi]) => {
    const pairs: [Buffer, Buffer][] = [[clName, cl], ...rest];
    if (scgi !== null) pairs.splice(1 + (scgi[0] % (rest.length + 1)), 0, [enc('SCGI'), scgi[1]]);
    return pairs;
  });

function block(pairs: [Buffer, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  const nul = Buffer.from([0]);
  for (const [n, v] of pairs) parts.push(n, nul, v, nul);
  return Buffer.concat(parts);
}

/** Netstring framing, sometimes wrong: length off by some, leading zeros, other separators. */
const framing = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ delta: 0, zeros: 0, colon: ':', comma: ',' }) },
  {
    weight: 2,
    arbitrary: fc.record({
      delta: fc.integer({ min: -3, max: 3 }),
      zeros: fc.nat({ max: 2 }),
      colon: fc.constantFrom(':', ':', ';', ''),
      comma: fc.constantFrom(',', ',', '', '\0', ';'),
    }),
  },
);

const requestArb = fc.tuple(pairsArb, framing, fc.uint8Array({ maxLength: 16 })).map(([pairs, f, body]) => {
  const b = block(pairs);
  const len = Math.max(0, b.length + f.delta);
  return Buffer.concat([enc('0'.repeat(f.zeros) + len + f.colon), b, enc(f.comma), Buffer.from(body)]);
});

const limitsArb: fc.Arbitrary<Limits> = fc.record({
  maxHeaderSize: fc.oneof(
    { weight: 3, arbitrary: fc.constant(65536) },
    { weight: 3, arbitrary: fc.nat({ max: 1200 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 1, 9, 10, 99, 100, 9_999_999, 10_000_000, 0xffffffff) },
  ),
  maxHeaders: fc.oneof({ weight: 3, arbitrary: fc.constant(1000) }, { weight: 3, arbitrary: fc.nat({ max: 40 }) }),
});

/** Mutations of a real vector. */
type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'prefix'; digits: string };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0xff, 0x3a, 0x2c, 0x30, 0x31, 0x39, 0x41) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0xff, 0x3a, 0x2c, 0x30) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('prefix' as const), digits: digits(0, 9) }),
);

function mutate(src: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(src);
  for (const m of ms) {
    // Positions biased to the front (length prefix and first pairs) half the time.
    const pos = (at: number) => (b.length === 0 ? 0 : at % 2 === 0 ? (at >> 1) % Math.min(b.length, 40) : (at >> 1) % b.length);
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) b[pos(m.at)]! ^= 1 << m.bit;
        break;
      case 'set':
        if (b.length > 0) b[pos(m.at)] = m.byte;
        break;
      case 'insert': {
        const i = pos(m.at);
        b = Buffer.concat([b.subarray(0, i), Buffer.from([m.byte]), b.subarray(i)]);
        break;
      }
      case 'delete': {
        const i = pos(m.at);
        b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
        break;
      }
      case 'truncate':
        b = b.subarray(0, m.at % (b.length + 1));
        break;
      case 'prefix': {
        const colon = b.indexOf(0x3a);
        if (colon >= 0) b = Buffer.concat([enc(m.digits), b.subarray(colon)]);
        break;
      }
    }
  }
  return b;
}

const mutatedArb = fc
  .tuple(fc.nat({ max: vectors.length - 1 }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
  .map(([i, ms]) => mutate(vectors[i]!, ms));

const randomBytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
  fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
  // a plausible length prefix, then garbage: reaches the pair scanner
  fc.uint8Array({ maxLength: 120 }).map((u) => Buffer.concat([enc(`${Math.max(0, u.length - 1)}:`), Buffer.from(u)])),
  fc.uint8Array({ maxLength: 120, min: 0, max: 3 }).map((u) => Buffer.concat([enc(`${Math.max(0, u.length - 1)}:`), Buffer.from(u)])),
);

const params = (runs: number) => ({ numRuns: runs, seed: SEED });

if (tsOnly) {
  describe('parser properties on the TS parser alone (SCGI_PARSER=js, no addon built)', () => {
    it('an error keeps its code, and a complete parse its result, as bytes are appended', () => {
      fc.assert(
        fc.property(fc.oneof(requestArb, mutatedArb, randomBytesArb), limitsArb, fc.boolean(), (buf, limits, strict) => {
          const flags = strict ? FLAG_STRICT : 0;
          const size = outSize(limits.maxHeaders);
          const whole = new Uint32Array(size);
          const st = jsParse(buf, whole, limits.maxHeaderSize, limits.maxHeaders, flags);
          const part = new Uint32Array(size);
          for (let k = 0; k < buf.length; k++) {
            const s = jsParse(buf.subarray(0, k), part, limits.maxHeaderSize, limits.maxHeaders, flags);
            if (s === Status.Error) {
              expect(st).toBe(Status.Error);
              expect(whole[OUT_CODE]).toBe(part[OUT_CODE]);
            } else if (s === Status.Complete) {
              expect(st).toBe(Status.Complete);
              const used = OUT_PAIRS + part[OUT_PAIR_COUNT]! * PAIR_STRIDE;
              expect([...whole.subarray(0, used)]).toEqual([...part.subarray(0, used)]);
            } else if (part[OUT_HEADER_END] !== 0 && st === Status.Complete) {
              expect(whole[OUT_HEADER_END]).toBe(part[OUT_HEADER_END]);
            }
          }
        }),
        params(Math.ceil(RUNS / 5)),
      );
    });
  });
} else
  describe('parser differential: js.ts vs the Rust addon', () => {
    it('the addon loads (SCGI_PARSER=js is the only reason to run without it)', () => {
      if (native === null) throw new Error(`native parser did not load: ${String((loadError as Error)?.message ?? loadError)}`, { cause: loadError });
      expect(native.name).toBe('native');
    });

    it('real vectors, unmodified, every prefix', () => {
      for (const v of vectors) {
        for (let k = 0; k <= v.length; k++) {
          compareBoth(v.subarray(0, k), { maxHeaderSize: 65536, maxHeaders: 1000 });
          compareBoth(v.subarray(0, k), { maxHeaderSize: 500, maxHeaders: 20 });
        }
      }
    });

    it('random requests (valid and near-valid), both modes, random limits', () => {
      fc.assert(
        fc.property(requestArb, limitsArb, (buf, limits) => {
          compareBoth(buf, limits);
        }),
        params(RUNS),
      );
    });

    it('valid requests parse Complete in both (sanity of the generator)', () => {
      let complete = 0;
      fc.assert(
        fc.property(fc.tuple(fc.nat({ max: 100000 }), fc.array(pairArb, { maxLength: 20 })), ([cl, rest]) => {
          const b = block([[enc('CONTENT_LENGTH'), enc(String(cl))], [enc('SCGI'), enc('1')], ...rest]);
          const buf = Buffer.concat([enc(`${b.length}:`), b, enc(',')]);
          if (compare(buf, { maxHeaderSize: 65536, maxHeaders: 1000 }, 0) === Status.Complete) complete++;
          compare(buf, { maxHeaderSize: 65536, maxHeaders: 1000 }, FLAG_STRICT);
        }),
        params(1000),
      );
      expect(complete).toBe(1000);
    });

    it('mutated real vectors (bit flips, NULs, 0xff, truncation, insertions, length prefix changes)', () => {
      fc.assert(
        fc.property(mutatedArb, limitsArb, (buf, limits) => {
          compareBoth(buf, limits);
        }),
        params(RUNS),
      );
    });

    it('random bytes', () => {
      fc.assert(
        fc.property(randomBytesArb, limitsArb, (buf, limits) => {
          compareBoth(buf, limits);
        }),
        params(RUNS),
      );
    });

    it('random chunkings: every prefix agrees', () => {
      fc.assert(
        fc.property(fc.oneof(requestArb, mutatedArb), limitsArb, fc.array(fc.nat(), { maxLength: 24 }), (buf, limits, cuts) => {
          // all short prefixes, plus random cut points over the whole buffer
          const n = buf.length;
          for (let k = 0; k <= Math.min(n, 12); k++) compareBoth(buf.subarray(0, k), limits);
          for (const c of cuts) compareBoth(buf.subarray(0, c % (n + 1)), limits);
          compareBoth(buf, limits);
        }),
        params(Math.ceil(RUNS / 2)),
      );
    });

    it('throws instead of writing past a short out array', () => {
      const buf = vectors[0]!;
      expect(() => native!.parse(buf, new Uint32Array(outSize(10) - 1), 65536, 10, 0)).toThrow();
      expect(() => native!.parse(buf, new Uint32Array(4), 65536, 0, 0)).toThrow();
      const ab = new ArrayBuffer(4096);
      expect(() => native!.parse(new Uint8Array(ab, 0, 64), new Uint32Array(ab, 0, outSize(10)), 65536, 10, 0)).toThrow();
    });
  });
