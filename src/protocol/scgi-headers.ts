/**
 * The request's header pairs, in wire order, made from the parser's offsets.
 * Nothing is decoded until it is read: names that are standard CGI/SCGI names
 * come from a constant table, other names and all values are decoded on
 * first access and cached.
 */
import { ScgiError, type ScgiErrorCode } from '../errors.ts';
import { CODE_NAMES, KNOWN_NAMES, OUT_CL_HIGH, OUT_CL_LOW, OUT_CODE, OUT_PAIR_COUNT, OUT_PAIRS, PAIR_STRIDE } from '../parser/types.ts';

const KNOWN_ID = new Map<string, number>(KNOWN_NAMES.map((n, i) => [n, i] as [string, number]).slice(1));

/** How header values are decoded. Names are always latin1 (they are ASCII in practice). */
export type HeaderEncoding = 'latin1' | 'utf8';

let ownBytes: (h: ScgiHeaders) => void;

/**
 * Make `h` hold copies of its bytes and offsets instead of views (a request
 * that outlives the native transport's batch must not keep the whole batch
 * alive: `NativeConnections.onBatchEnd`).
 */
export function ownHeaderBytes(h: ScgiHeaders): void {
  ownBytes(h);
}

export class ScgiHeaders implements Iterable<[string, string]> {
  /** The request body's length in bytes, from CONTENT_LENGTH. */
  readonly contentLength: number;
  /** Number of pairs. */
  readonly length: number;
  #buf: Buffer;
  /** PAIR_STRIDE words per pair from `#base` on (a shared array: see `headersFromParse`). */
  #offsets: Uint32Array;
  #base: number;
  readonly #encoding: HeaderEncoding;
  #names: (string | undefined)[] | undefined;
  #values: (string | undefined)[] | undefined;

  /**
   * @param buf the bytes the offsets point into (kept, not copied)
   * @param offsets PAIR_STRIDE slots per pair, as the parser writes them, from `base` on (kept, not copied: nobody may change them)
   * @param length the number of pairs
   */
  constructor(buf: Buffer, offsets: Uint32Array, base: number, length: number, contentLength: number, encoding: HeaderEncoding = 'latin1') {
    this.#buf = buf;
    this.#offsets = offsets;
    this.#base = base;
    this.length = length;
    this.contentLength = contentLength;
    this.#encoding = encoding;
  }

  static {
    ownBytes = (h) => {
      const words = h.length * PAIR_STRIDE;
      const offsets = h.#offsets.slice(h.#base, h.#base + words);
      const end = h.length === 0 ? 0 : offsets[words - PAIR_STRIDE + 3]!;
      h.#buf = Buffer.from(h.#buf.subarray(0, end));
      h.#offsets = offsets;
      h.#base = 0;
    };
  }

  /** Name of pair `i`. */
  name(i: number): string {
    const o = this.#base + i * PAIR_STRIDE;
    const id = this.#offsets[o + 4]!;
    if (id !== 0) return KNOWN_NAMES[id]!;
    const names = (this.#names ??= []);
    return (names[i] ??= this.#buf.toString('latin1', this.#offsets[o]!, this.#offsets[o + 1]!));
  }

  /** Value of pair `i`, decoded. */
  value(i: number): string {
    const values = (this.#values ??= []);
    let v = values[i];
    if (v === undefined) {
      const o = this.#base + i * PAIR_STRIDE;
      const start = this.#offsets[o + 2]!;
      const end = this.#offsets[o + 3]!;
      v = start === end ? '' : this.#encoding === 'utf8' ? this.#buf.toString('utf8', start, end) : this.#buf.toString('latin1', start, end);
      values[i] = v;
    }
    return v;
  }

  /** Raw bytes of the value of pair `i` (a view, not a copy). */
  rawValue(i: number): Buffer {
    const o = this.#base + i * PAIR_STRIDE;
    return this.#buf.subarray(this.#offsets[o + 2]!, this.#offsets[o + 3]!);
  }

  /** Index of the first pair named `name` at or after `from`, or -1. Makes no strings. */
  indexOf(name: string, from = 0): number {
    const offsets = this.#offsets;
    const id = KNOWN_ID.get(name);
    if (id !== undefined) {
      for (let i = from, o = this.#base + from * PAIR_STRIDE + 4; i < this.length; i++, o += PAIR_STRIDE) {
        if (offsets[o] === id) return i;
      }
      return -1;
    }
    const buf = this.#buf;
    const n = name.length;
    outer: for (let i = from, o = this.#base + from * PAIR_STRIDE; i < this.length; i++, o += PAIR_STRIDE) {
      const start = offsets[o]!;
      if (offsets[o + 4] !== 0 || offsets[o + 1]! - start !== n) continue;
      for (let k = 0; k < n; k++) if (buf[start + k] !== name.charCodeAt(k)) continue outer;
      return i;
    }
    return -1;
  }

  /** Value of the first pair named `name`. */
  get(name: string): string | undefined {
    const i = this.indexOf(name);
    return i === -1 ? undefined : this.value(i);
  }

  /** Values of every pair named `name`, in wire order (nginx repeats names). */
  getAll(name: string): string[] {
    const all: string[] = [];
    for (let i = this.indexOf(name); i !== -1; i = this.indexOf(name, i + 1)) all.push(this.value(i));
    return all;
  }

  has(name: string): boolean {
    return this.indexOf(name) !== -1;
  }

  *entries(): IterableIterator<[string, string]> {
    for (let i = 0; i < this.length; i++) yield [this.name(i), this.value(i)];
  }

  *keys(): IterableIterator<string> {
    for (let i = 0; i < this.length; i++) yield this.name(i);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** Plain object; a repeated name keeps its first value (use getAll for the rest). */
  toObject(): Record<string, string> {
    const o: Record<string, string> = Object.create(null);
    for (let i = 0; i < this.length; i++) {
      const n = this.name(i);
      if (!(n in o)) o[n] = this.value(i);
    }
    return o;
  }

  /** For console.log and JSON.stringify: the pairs. */
  toJSON(): [string, string][] {
    return [...this.entries()];
  }

  [Symbol.for('nodejs.util.inspect.custom')](): unknown {
    return { contentLength: this.contentLength, pairs: this.toJSON() };
  }
}

/**
 * Where copied pair offsets go: slices of one shared array, as `Buffer`'s
 * pool does for small buffers (a typed array per request costs an
 * allocation outside the heap and its sweeping). A header with more pairs
 * than a quarter of it gets its own array.
 */
const SLAB_WORDS = 4096;
let slab = new Uint32Array(SLAB_WORDS);
let slabUsed = 0;

/**
 * The headers of a `Complete` parse: `out[at + OUT_*]` as the parser filled
 * it. `keep`: `out` is never written again (the native transport's batch
 * records), so the headers read it in place; otherwise (a parser's reused
 * `out`) the pair offsets are copied first.
 */
export function headersFromParse(buf: Buffer, out: Uint32Array, at = 0, keep = false, encoding: HeaderEncoding = 'latin1'): ScgiHeaders {
  const pairs = out[at + OUT_PAIR_COUNT]!;
  const contentLength = out[at + OUT_CL_HIGH]! * 0x1_0000_0000 + out[at + OUT_CL_LOW]!;
  if (keep) return new ScgiHeaders(buf, out, at + OUT_PAIRS, pairs, contentLength, encoding);
  const words = pairs * PAIR_STRIDE;
  const from = at + OUT_PAIRS;
  if (words > SLAB_WORDS / 4) return new ScgiHeaders(buf, out.slice(from, from + words), 0, pairs, contentLength, encoding);
  if (slabUsed + words > SLAB_WORDS) {
    slab = new Uint32Array(SLAB_WORDS);
    slabUsed = 0;
  }
  const base = slabUsed;
  const to = slab;
  for (let i = 0; i < words; i++) to[base + i] = out[from + i]!;
  slabUsed = base + words;
  return new ScgiHeaders(buf, to, base, pairs, contentLength, encoding);
}

/** The `ScgiError` of an `Error` parse. */
export function errorFromParse(out: Uint32Array): ScgiError {
  return errorOfParseCode(out[OUT_CODE]!);
}

/** The `ScgiError` of a parser error code (`CODE_NAMES`), from the JS parse or the native engine's reject. */
export function errorOfParseCode(code: number): ScgiError {
  const name = (CODE_NAMES[code] ?? 'ERR_SCGI_BAD_HEADERS') as ScgiErrorCode;
  return new ScgiError(name, `bad SCGI request: ${name}`);
}
