import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HeaderBuffer } from '../src/protocol/header-buffer.ts';

describe('HeaderBuffer', () => {
  it('holds exactly the bytes appended, in order, whatever the chunking and need', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 40 }), fc.nat({ max: 5000 }), (chunks, need) => {
        const b = new HeaderBuffer();
        let view: Buffer = Buffer.alloc(0);
        for (const c of chunks) view = b.append(Buffer.from(c), need);
        expect(view.equals(Buffer.concat(chunks.map((c) => Buffer.from(c))))).toBe(true);
        b.reset();
        expect(b.gathering).toBe(false);
      }),
    );
  });

  it('earlier views stay valid after it grows (the server keeps the header bytes)', () => {
    const b = new HeaderBuffer();
    const first = Buffer.from(b.append(Buffer.from('abc'), 0));
    const v = b.append(Buffer.alloc(5000, 'x'), 0);
    expect(v.subarray(0, 3).toString()).toBe(first.toString());
  });
});
