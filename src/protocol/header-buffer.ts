/**
 * Gathers the bytes of a request header that arrives in pieces. One buffer
 * grows by doubling, never past what the parser said it needs: O(n) copying
 * and O(n) memory for a header sent a byte per packet (concatenating each
 * chunk onto the previous ones would copy O(n²) bytes; listing chunks would
 * cost an object per byte).
 */
export class HeaderBuffer {
  #acc: Buffer | null = null;
  #have = 0;

  /** True while bytes are being gathered. */
  get gathering(): boolean {
    return this.#acc !== null;
  }

  /** Add `chunk`; `need` is the total the parser asked for (0: not known). Returns a view of all bytes so far. */
  append(chunk: Buffer, need: number): Buffer {
    const have = this.#have + chunk.length;
    let acc = this.#acc;
    if (acc === null || have > acc.length) {
      const grown = Math.max(have, acc === null ? 1024 : acc.length * 2);
      const next = Buffer.allocUnsafe(need > have ? Math.min(grown, need) : have);
      if (acc !== null) acc.copy(next, 0, 0, this.#have);
      this.#acc = acc = next;
    }
    chunk.copy(acc, this.#have);
    this.#have = have;
    return acc.subarray(0, have);
  }

  /** Forget the bytes (they now belong to whoever took the last view). */
  reset(): void {
    this.#acc = null;
    this.#have = 0;
  }
}
