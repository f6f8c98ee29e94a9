import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readHeader } from '../src/index.ts';
import { parserInfo } from '../src/parser/index.ts';

const fixture = readFileSync(join(import.meta.dirname, 'fixtures', 'nginx-tcp-post5.bin'));

/** The same bytes in a Buffer over a SharedArrayBuffer (as a worker thread might hand them over). */
function shared(bytes: Uint8Array): Buffer {
  const b = Buffer.from(new SharedArrayBuffer(bytes.length));
  b.set(bytes);
  return b;
}

describe(`readHeader with the ${parserInfo.backend} parser`, () => {
  it('reads a header over a SharedArrayBuffer as it reads the same bytes in an ordinary Buffer (both parsers agree)', async () => {
    const plain = await readHeader(Readable.from([fixture]));
    const fromShared = await readHeader(Readable.from([shared(fixture)]));
    expect([...fromShared.headers]).toEqual([...plain.headers]);
    const body: Buffer[] = [];
    for await (const c of fromShared.body) body.push(c as Buffer);
    expect(Buffer.concat(body).toString('latin1')).toBe('hello');
  });
});
