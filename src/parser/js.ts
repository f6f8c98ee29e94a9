/**
 * The reference SCGI parser, in TypeScript. The Rust addon
 * (crates/scgi-parser) implements exactly this algorithm; where the two
 * disagree, this file is right and the addon has a bug.
 *
 * Algorithm (the order of checks is part of the contract, because it decides
 * which error a malformed input gets):
 *
 * 1. Length prefix, byte by byte. Empty input: Partial. A digit after a
 *    leading `0`, an 8th digit, or a non-digit other than `:` after at least
 *    one digit: BadNetstring. A running length above `maxHeaderSize`:
 *    HeaderTooLarge (reported as soon as the digits seen prove it, so a huge
 *    header is refused before it is buffered). Out of bytes: Partial, need 0.
 * 2. Until `len + digits + 2` bytes are present: Partial, need = that count.
 * 3. The byte after the block is not `,`: BadNetstring.
 * 4. Empty block: MissingContentLength.
 * 5. Pairs, left to right. No NUL after the name: BadHeaders. Empty name:
 *    BadHeaders. No NUL after the value: BadHeaders. Pair count already
 *    `maxHeaders`: TooManyHeaders. Pair 0 not named CONTENT_LENGTH:
 *    MissingContentLength; its value empty, not all digits, or above
 *    2^53-1: BadContentLength. strict, later pairs: a name equal (bytewise)
 *    to an earlier one: DuplicateHeader.
 * 6. strict: no `SCGI` pair, or the first one's value is not `1`: MissingScgi.
 */
import {
  Code,
  FLAG_STRICT,
  ID_CONTENT_LENGTH,
  ID_SCGI,
  KNOWN_NAMES,
  MAX_NETSTRING_LENGTH,
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
  type ParserBackend,
} from './types.ts';

const COLON = 0x3a;
const COMMA = 0x2c;
const ZERO = 0x30;
const NINE = 0x39;
const TWO_32 = 0x1_0000_0000;

/** KNOWN_NAMES as bytes, bucketed by length: BY_LENGTH[len] = [id, bytes][]. */
const BY_LENGTH: Array<Array<[number, Uint8Array]>> = [];
for (let id = 1; id < KNOWN_NAMES.length; id++) {
  const name = KNOWN_NAMES[id]!;
  (BY_LENGTH[name.length] ??= []).push([id, Buffer.from(name, 'latin1')]);
}

/** Id of the name at buf[start, end) in KNOWN_NAMES, or 0. */
export function knownNameId(buf: Uint8Array, start: number, end: number): number {
  const bucket = BY_LENGTH[end - start];
  if (bucket === undefined) return 0;
  outer: for (let b = 0; b < bucket.length; b++) {
    const entry = bucket[b]!;
    const bytes = entry[1];
    for (let k = bytes.length - 1; k >= 0; k--) {
      // Compare from the end: most names share their prefix (HTTP_, SERVER_, ...).
      if (buf[start + k] !== bytes[k]) continue outer;
    }
    return entry[0];
  }
  return 0;
}

function sameBytes(buf: Uint8Array, a: number, aEnd: number, b: number, bEnd: number): boolean {
  if (aEnd - a !== bEnd - b) return false;
  for (; a < aEnd; a++, b++) if (buf[a] !== buf[b]) return false;
  return true;
}

function indexOfNul(buf: Uint8Array, from: number, to: number): number {
  // Uint8Array#indexOf is a memchr in V8; bound the search by `to` afterwards.
  const i = buf.indexOf(0, from);
  return i === -1 || i >= to ? -1 : i;
}

/** Scratch for strict duplicate detection, reused across calls (single-threaded). */
const seenKnown = new Uint8Array(KNOWN_NAMES.length);
const unknownPairs: number[] = [];

function fail(out: Uint32Array, code: number): Status {
  out[OUT_CODE] = code;
  return Status.Error;
}

/** The pure-TS backend. See the module comment for the algorithm. */
export function parse(buf: Uint8Array, out: Uint32Array, maxHeaderSize: number, maxHeaders: number, flags: number): Status {
  const n = buf.length;
  const limit = Math.min(maxHeaderSize, MAX_NETSTRING_LENGTH);
  out[OUT_CODE] = Code.None;
  out[OUT_HEADER_END] = 0;

  // 1. length prefix
  let i = 0;
  let len = 0;
  for (;;) {
    if (i === n) return Status.Partial;
    const c = buf[i]!;
    if (c >= ZERO && c <= NINE) {
      if (i === 1 && buf[0] === ZERO) return fail(out, Code.BadNetstring);
      if (i === 7) return fail(out, Code.BadNetstring);
      len = len * 10 + (c - ZERO);
      i++;
      if (len > limit) return fail(out, Code.HeaderTooLarge);
      continue;
    }
    if (c === COLON && i > 0) break;
    return fail(out, Code.BadNetstring);
  }

  // 2. whole block present?
  const blockStart = i + 1;
  const blockEnd = blockStart + len;
  const need = blockEnd + 1;
  if (n < need) {
    out[OUT_HEADER_END] = need;
    return Status.Partial;
  }
  // 3.
  if (buf[blockEnd] !== COMMA) return fail(out, Code.BadNetstring);
  // 4.
  if (len === 0) return fail(out, Code.MissingContentLength);

  // 5. pairs
  const strict = (flags & FLAG_STRICT) !== 0;
  if (strict) {
    seenKnown.fill(0);
    unknownPairs.length = 0;
  }
  let pos = blockStart;
  let pairs = 0;
  let scgiIndex = NO_INDEX;
  let contentLength = 0;
  let o = OUT_PAIRS;
  while (pos < blockEnd) {
    const nameEnd = indexOfNul(buf, pos, blockEnd);
    if (nameEnd === -1 || nameEnd === pos) return fail(out, Code.BadHeaders);
    const valueStart = nameEnd + 1;
    const valueEnd = indexOfNul(buf, valueStart, blockEnd);
    if (valueEnd === -1) return fail(out, Code.BadHeaders);
    if (pairs === maxHeaders) return fail(out, Code.TooManyHeaders);
    const id = knownNameId(buf, pos, nameEnd);
    if (pairs === 0) {
      if (id !== ID_CONTENT_LENGTH) return fail(out, Code.MissingContentLength);
      if (valueEnd === valueStart) return fail(out, Code.BadContentLength);
      for (let k = valueStart; k < valueEnd; k++) {
        const d = buf[k]! - ZERO;
        if (d < 0 || d > 9) return fail(out, Code.BadContentLength);
        contentLength = contentLength * 10 + d;
        if (contentLength > Number.MAX_SAFE_INTEGER) return fail(out, Code.BadContentLength);
      }
      if (strict) seenKnown[id] = 1;
    } else if (strict) {
      if (id !== 0) {
        if (seenKnown[id] === 1) return fail(out, Code.DuplicateHeader);
        seenKnown[id] = 1;
      } else {
        for (let u = 0; u < unknownPairs.length; u += 2) {
          if (sameBytes(buf, pos, nameEnd, unknownPairs[u]!, unknownPairs[u + 1]!)) {
            return fail(out, Code.DuplicateHeader);
          }
        }
        unknownPairs.push(pos, nameEnd);
      }
    }
    if (id === ID_SCGI && scgiIndex === NO_INDEX) scgiIndex = pairs;
    out[o] = pos;
    out[o + 1] = nameEnd;
    out[o + 2] = valueStart;
    out[o + 3] = valueEnd;
    out[o + 4] = id;
    o += PAIR_STRIDE;
    pairs++;
    pos = valueEnd + 1;
  }

  // 6.
  if (strict) {
    if (scgiIndex === NO_INDEX) return fail(out, Code.MissingScgi);
    const v = OUT_PAIRS + scgiIndex * PAIR_STRIDE + 2;
    if (out[v + 1]! - out[v]! !== 1 || buf[out[v]!] !== 0x31) return fail(out, Code.MissingScgi);
  }

  out[OUT_HEADER_END] = need;
  out[OUT_PAIR_COUNT] = pairs;
  out[OUT_CL_LOW] = contentLength % TWO_32;
  out[OUT_CL_HIGH] = Math.floor(contentLength / TWO_32);
  out[OUT_SCGI_INDEX] = scgiIndex;
  return Status.Complete;
}

export const jsBackend: ParserBackend = { name: 'js', parse };
