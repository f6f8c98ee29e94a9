/**
 * The one loop that reads a request header from chunks as they arrive, used
 * by the server's connection lifecycle (`src/connection/lifecycle.ts`) and by
 * `readHeader` (`src/protocol/header-from-stream.ts`).
 *
 * A header that arrives in one chunk is parsed in place (no copy). One that
 * arrives in pieces gathers in a `HeaderBuffer`, and the parser runs again
 * only once the byte count it asked for (`out[OUT_HEADER_END]` of a
 * `Partial`) is there, so a header sent a byte per packet costs O(n).
 */
import { HeaderBuffer } from './header-buffer.ts';
import { OUT_HEADER_END, Status, type ParserBackend } from '../parser/types.ts';

/** How to parse: the backend, its result array and the limits (one per server, shared by its connections). */
export interface HeaderParse {
  readonly parse: ParserBackend['parse'];
  /** Filled by each parse; read it before the next `push` of any reader sharing it. */
  readonly out: Uint32Array;
  readonly maxHeaderSize: number;
  readonly maxHeadersCount: number;
  /** `FLAG_STRICT` or 0. */
  readonly flags: number;
}

export class HeaderReader {
  #bytes: HeaderBuffer | null = null;
  /** Bytes the parser needs before it can say more (0: not known yet). */
  #need = 0;
  /**
   * After `push` returned `Complete`: the bytes the header is in (from 0 to
   * `out[OUT_HEADER_END]`), followed by whatever came after it.
   */
  buffer: Buffer | null = null;

  /**
   * Add a chunk. `Partial`: more is needed. `Complete`: `buffer` and
   * `cfg.out` hold the header. `Error`: `cfg.out` holds the code. After
   * `Complete` or `Error` the reader holds nothing.
   */
  push(chunk: Buffer, cfg: HeaderParse): Status {
    let buf = chunk;
    const bytes = this.#bytes;
    const gathering = bytes?.gathering || chunk.length < this.#need;
    if (gathering) {
      buf = (this.#bytes ??= new HeaderBuffer()).append(chunk, this.#need);
      if (buf.length < this.#need) return Status.Partial;
    } else if (chunk.buffer instanceof SharedArrayBuffer) {
      // The addon refuses memory another thread could write while it parses
      // (crates/scgi-napi/src/parse.rs): parse a private copy, as the TS parser
      // would read the same bytes.
      buf = Buffer.from(chunk);
    }
    const out = cfg.out;
    const status = cfg.parse(buf, out, cfg.maxHeaderSize, cfg.maxHeadersCount, cfg.flags);
    if (status === Status.Partial) {
      this.#need = out[OUT_HEADER_END]!;
      if (!gathering) (this.#bytes ??= new HeaderBuffer()).append(buf, this.#need);
      return status;
    }
    this.reset();
    if (status === Status.Complete) this.buffer = buf;
    return status;
  }

  /** Forget what was gathered. */
  reset(): void {
    this.#bytes?.reset();
    this.#need = 0;
    this.buffer = null;
  }
}
