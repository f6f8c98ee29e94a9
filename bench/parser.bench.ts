// Parser benchmark: the TS parser vs the Rust addon, on real vectors and
// synthesized large headers, next to the Buffer.indexOf scan of the same bytes
// (the practical floor), a naive indexOf+toString parser (what the parser
// must beat when every header is read), and the fixed cost of one call into
// the addon (`parse` of an empty buffer: argument checks, returns Partial at once).
//
//   npm run bench:parser            (node --import ./scripts/ts-loader.mjs bench/parser.bench.ts)
//   BENCH_TIME=2000 npm run bench:parser    (ms per task; default 700)
//   BASELINE_ADDON=/tmp/old/scgi.linux-x64-gnu.node npm run bench:parser
//       (adds the native tasks run by another build of the addon, for before/after)
//
// Prints a markdown table (ns per request and MB/s of header bytes).
import { Bench } from 'tinybench';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parse as jsParse } from '../src/parser/js.ts';
import { loadAddon } from '../src/parser/native.ts';
import { KNOWN_NAMES, OUT_PAIR_COUNT, OUT_PAIRS, PAIR_STRIDE, Status, outSize } from '../src/parser/types.ts';

const MAX_HEADER_SIZE = 65536;
const MAX_HEADERS = 1000;
const TIME = Number(process.env.BENCH_TIME ?? 700);

const addon = loadAddon();
const nativeParse = addon.parse;
const EMPTY = new Uint8Array(0);
const baseline = process.env.BASELINE_ADDON ? (createRequire(import.meta.url)(process.env.BASELINE_ADDON) as { parse: typeof nativeParse }) : undefined;

const fixture = (f: string) => readFileSync(fileURLToPath(new URL(`../test/fixtures/${f}`, import.meta.url)));

function netstring(pairs: [string, string][]): Buffer {
  const block = Buffer.from(pairs.map(([n, v]) => `${n}\0${v}\0`).join(''), 'latin1');
  return Buffer.concat([Buffer.from(`${block.length}:`), block, Buffer.from(',')]);
}

/** Pairs of a request (via the TS parser; the bench input is checked to parse Complete). */
function pairsOf(buf: Buffer): [string, string][] {
  const out = new Uint32Array(outSize(MAX_HEADERS));
  if (jsParse(buf, out, MAX_HEADER_SIZE, MAX_HEADERS, 0) !== Status.Complete) throw new Error('fixture does not parse');
  const pairs: [string, string][] = [];
  for (let k = 0, o = OUT_PAIRS; k < out[OUT_PAIR_COUNT]!; k++, o += PAIR_STRIDE) {
    pairs.push([buf.toString('latin1', out[o], out[o + 1]), buf.toString('latin1', out[o + 2], out[o + 3])]);
  }
  return pairs;
}

/** A browser-like request grown to about `size` header bytes with big cookies and some extra headers. */
function synth(size: number): Buffer {
  const base = pairsOf(fixture('nginx-tcp-get.bin')).filter(([n]) => n !== 'HTTP_COOKIE');
  const extra: [string, string][] = [];
  for (let i = 0; i < 12; i++) extra.push([`HTTP_X_TRACE_${i}`, `${i}-`.padEnd(60, 'abcdef0123456789')]);
  const cookies: string[] = [];
  let i = 0;
  const fits = () => netstring([...base, ...extra, ['HTTP_COOKIE', cookies.join('; ')]]).length;
  while (fits() < size - 200) cookies.push(`session_${i++}=${'v'.repeat(20)}${i.toString(36).padStart(40, 'Q')}`);
  const cookie = cookies.join('; ');
  const pairs: [string, string][] = [...base, ...extra, ['HTTP_COOKIE', cookie.padEnd(cookie.length + (size - fits()), 'z')]];
  const buf = netstring(pairs);
  if (buf.length !== size) throw new Error(`synth ${buf.length} != ${size}`);
  return buf;
}

/** The header part only (the bench parses headers; bodies are not read). */
function header(buf: Buffer): Buffer {
  const colon = buf.indexOf(0x3a);
  return buf.subarray(0, colon + 1 + Number(buf.toString('latin1', 0, colon)) + 1);
}

const inputs: [string, Buffer][] = [
  ['nginx GET (real)', header(fixture('nginx-tcp-get.bin'))],
  ['apache GET (real)', header(fixture('apache-tcp-get.bin'))],
  ['16 KB synthesized', synth(16 * 1024)],
  ['60 KB synthesized', synth(60 * 1024)],
];

const out = new Uint32Array(outSize(MAX_HEADERS));
let sink = 0;

type Parse = (buf: Uint8Array, out: Uint32Array, maxHeaderSize: number, maxHeaders: number, flags: number) => number;

function parseOnly(p: Parse, buf: Buffer): void {
  if (p(buf, out, MAX_HEADER_SIZE, MAX_HEADERS, 0) !== Status.Complete) throw new Error('not complete');
  sink += out[OUT_PAIR_COUNT]!;
}

/** Parse, then make every header string: names from KNOWN_NAMES by id else latin1, values latin1. */
function parseAndRead(p: Parse, buf: Buffer): void {
  if (p(buf, out, MAX_HEADER_SIZE, MAX_HEADERS, 0) !== Status.Complete) throw new Error('not complete');
  const n = out[OUT_PAIR_COUNT]!;
  const headers: string[] = new Array(2 * n);
  for (let k = 0, o = OUT_PAIRS; k < n; k++, o += PAIR_STRIDE) {
    const id = out[o + 4]!;
    headers[2 * k] = id !== 0 ? KNOWN_NAMES[id]! : buf.toString('latin1', out[o], out[o + 1]);
    headers[2 * k + 1] = buf.toString('latin1', out[o + 2], out[o + 3]);
  }
  sink += headers.length;
}

/** The floor: find every NUL of the header block with Buffer.indexOf. */
function indexOfScan(buf: Buffer): void {
  const end = buf.length - 1;
  let count = 0;
  for (let i = buf.indexOf(0x3a) + 1; ; i++) {
    i = buf.indexOf(0, i);
    if (i === -1 || i >= end) break;
    count++;
  }
  sink += count;
}

/** Naive parser: indexOf for every delimiter, toString('latin1') for every field, no validation beyond framing. */
function naive(buf: Buffer): void {
  const colon = buf.indexOf(0x3a);
  const len = Number(buf.toString('latin1', 0, colon));
  const end = colon + 1 + len;
  const headers: string[] = [];
  let i = colon + 1;
  while (i < end) {
    const z = buf.indexOf(0, i);
    headers.push(buf.toString('latin1', i, z));
    i = z + 1;
  }
  if (buf[end] !== 0x2c) throw new Error('bad');
  sink += headers.length;
}

/** Repeat `fn` enough times per sample that timer resolution does not matter. */
function repsFor(bytes: number): number {
  return Math.max(16, Math.min(2000, Math.round(400_000 / bytes)));
}

interface Row {
  input: string;
  bytes: number;
  reps: number;
  results: Map<string, number>; // task -> ns per op
}

const TASKS = [
  'TS parse',
  'native parse',
  'TS parse+read',
  'native parse+read',
  'indexOf(0) scan',
  'naive indexOf+toString',
  'native call (empty buf)',
  ...(baseline ? (['baseline native parse', 'baseline call (empty buf)'] as const) : []),
] as const;

async function measure(name: string, buf: Buffer): Promise<Row> {
  const reps = repsFor(buf.length);
  const fns: Record<string, () => void> = {
    'TS parse': () => {
      for (let r = 0; r < reps; r++) parseOnly(jsParse, buf);
    },
    'native parse': () => {
      for (let r = 0; r < reps; r++) parseOnly(nativeParse, buf);
    },
    'TS parse+read': () => {
      for (let r = 0; r < reps; r++) parseAndRead(jsParse, buf);
    },
    'native parse+read': () => {
      for (let r = 0; r < reps; r++) parseAndRead(nativeParse, buf);
    },
    'indexOf(0) scan': () => {
      for (let r = 0; r < reps; r++) indexOfScan(buf);
    },
    'naive indexOf+toString': () => {
      for (let r = 0; r < reps; r++) naive(buf);
    },
    'native call (empty buf)': () => {
      for (let r = 0; r < reps; r++) {
        if (nativeParse(EMPTY, out, MAX_HEADER_SIZE, MAX_HEADERS, 0) !== Status.Partial) throw new Error('not partial');
      }
    },
    'baseline native parse': () => {
      for (let r = 0; r < reps; r++) parseOnly(baseline!.parse, buf);
    },
    'baseline call (empty buf)': () => {
      for (let r = 0; r < reps; r++) {
        if (baseline!.parse(EMPTY, out, MAX_HEADER_SIZE, MAX_HEADERS, 0) !== Status.Partial) throw new Error('not partial');
      }
    },
  };
  const bench = new Bench({ time: TIME, warmupTime: 150, warmupIterations: 20 });
  for (const t of TASKS) bench.add(t, fns[t]!);
  await bench.run();
  const results = new Map<string, number>();
  for (const task of bench.tasks) {
    const r = task.result as { state: string; period?: number; error?: unknown };
    if (r.state !== 'completed' || r.period === undefined) throw new Error(`${task.name}: ${r.state} ${String(r.error)}`);
    results.set(task.name, (r.period * 1e6) / reps);
  }
  return { input: name, bytes: buf.length, reps, results };
}

const rows: Row[] = [];
for (const [name, buf] of inputs) {
  rows.push(await measure(name, buf));
  process.stderr.write(`measured ${name}\n`);
}

const mbps = (bytes: number, ns: number) => (bytes / ns) * 1e3; // bytes/ns = GB/s; *1e3 = MB/s
const fmt = (ns: number) => (ns < 100 ? ns.toFixed(1) : ns.toFixed(0));

console.log(`\n| input | bytes | ${TASKS.join(' | ')} |`);
console.log(`|---|---:|${TASKS.map(() => '---:').join('|')}|`);
for (const r of rows) {
  const cells = TASKS.map((t) => {
    const ns = r.results.get(t)!;
    return t.endsWith('call (empty buf)') ? `${fmt(ns)} ns` : `${fmt(ns)} ns (${mbps(r.bytes, ns).toFixed(0)} MB/s)`;
  });
  console.log(`| ${r.input} | ${r.bytes} | ${cells.join(' | ')} |`);
}

console.log(
  '\n| input | native parse speedup vs TS | native parse+read speedup vs TS parse+read | native parse+read vs naive | TS parse+read vs naive | native parse vs indexOf scan |',
);
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const g = (t: string) => r.results.get(t)!;
  console.log(
    `| ${r.input} | ${(g('TS parse') / g('native parse')).toFixed(2)}× | ${(g('TS parse+read') / g('native parse+read')).toFixed(2)}× | ${(g('naive indexOf+toString') / g('native parse+read')).toFixed(2)}× | ${(g('naive indexOf+toString') / g('TS parse+read')).toFixed(2)}× | ${(g('native parse') / g('indexOf(0) scan')).toFixed(2)}× the scan time |`,
  );
}
if (baseline) {
  console.log('\n| input | native parse: this build / baseline (time) | call (empty buf): this build / baseline (time) |');
  console.log('|---|---:|---:|');
  for (const r of rows) {
    const g = (t: string) => r.results.get(t)!;
    console.log(
      `| ${r.input} | ${(g('native parse') / g('baseline native parse')).toFixed(2)} | ${(g('native call (empty buf)') / g('baseline call (empty buf)')).toFixed(2)} |`,
    );
  }
}
if (sink === 42) console.log('');
