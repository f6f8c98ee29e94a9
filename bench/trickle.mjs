// A 60 KB header written to readHeader one byte per write: measures the cost
// of gathering a header that arrives in tiny pieces (npm run build first).
//   node bench/trickle.mjs [cookieBytes]
import { PassThrough } from 'node:stream';
import { readHeader } from '../dist/index.js';

const size = Number(process.argv[2] ?? 60000);
const pairs = [
  ['CONTENT_LENGTH', '0'],
  ['SCGI', '1'],
  ['HTTP_COOKIE', 'x'.repeat(size)],
];
const block = Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(''), 'latin1');
const req = Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(',')]);
const stream = new PassThrough();
const t = performance.now();
const pending = readHeader(stream);
for (let i = 0; i < req.length; i++) stream.write(req.subarray(i, i + 1));
const { headers } = await pending;
console.log(`${req.length} bytes, one per write: ${(performance.now() - t).toFixed(0)} ms (cookie ${headers.get('HTTP_COOKIE').length} bytes)`);
