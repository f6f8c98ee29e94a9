#!/usr/bin/env node
// Coverage-guided fuzzing of the Rust parser and of the native transport's
// engine (fuzz/, cargo-fuzz + libFuzzer): runs each target for a bounded time
// and fails on any crash or failed check.
//
//   node scripts/fuzz.mjs                 (every target, 60 s each)
//   node scripts/fuzz.mjs split           (one target)
//   SCGI_FUZZ_SECONDS=10 node scripts/fuzz.mjs
//
// Needs the nightly toolchain and cargo-fuzz (`.ci/run` installs cargo-fuzz).
// The corpus starts from the captured requests in test/fixtures/*.bin, copied
// into a temporary directory that is removed afterwards (no corpus is kept in
// the repository). A crash leaves its input in fuzz/artifacts/<target>/ and
// the reproduction command in the output; keep such an input as a regression
// test once fixed (crates/scgi-parser/tests/, or a case of the engine's
// property test in crates/scgi-napi/src/transport/engine.rs).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARGETS = ['split', 'typed_raw', 'engine'];
const seconds = Number(process.env.SCGI_FUZZ_SECONDS ?? 60);
if (!Number.isInteger(seconds) || seconds < 1) throw new Error(`SCGI_FUZZ_SECONDS must be a positive integer, not ${process.env.SCGI_FUZZ_SECONDS}`);
const targets = process.argv.length > 2 ? process.argv.slice(2) : TARGETS;
for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`unknown fuzz target ${t} (${TARGETS.join(', ')})`);

const fixtures = join(root, 'test', 'fixtures');
const failed = [];
for (const target of targets) {
  const corpus = mkdtempSync(join(tmpdir(), `scgi-fuzz-${target}-`));
  // The engine target's unix sockets go under TMPDIR: one removed afterwards.
  const scratch = mkdtempSync(join(tmpdir(), `scgi-fuzz-tmp-${target}-`));
  try {
    for (const f of readdirSync(fixtures)) if (f.endsWith('.bin')) copyFileSync(join(fixtures, f), join(corpus, f));
    // -max_len: the split target parses every prefix (quadratic in the header
    // size); 8 KiB holds every captured header and keeps runs fast.
    const args = ['+nightly', 'fuzz', 'run', target, corpus, '--', `-max_total_time=${seconds}`, '-max_len=8192', '-print_final_stats=1'];
    console.log(`\n--> cargo ${args.join(' ')}`);
    const r = spawnSync('cargo', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, TMPDIR: scratch } });
    const err = r.stderr ?? '';
    // libFuzzer logs to stderr: all of it on failure (the crash report and the
    // reproduction command), else the start and the final statistics.
    const lines = err.split('\n');
    const short = r.status === 0 && lines.length > 60;
    process.stderr.write(short ? [...lines.slice(0, 15), `... (${lines.length - 35} lines)`, ...lines.slice(-20)].join('\n') : err);
    const done = [...err.matchAll(/^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/gm)].at(-1);
    const runs = /^Done (\d+) runs in (\d+) second/m.exec(err);
    if (r.status !== 0) {
      failed.push(target);
      console.log(`fuzz ${target}: FAILED (exit ${r.status ?? r.signal})`);
    } else {
      console.log(
        `fuzz ${target}: ${runs ? `${runs[1]} runs in ${runs[2]} s` : 'runs ?'}, ` +
          (done ? `coverage ${done[2]} edges, ${done[3]} features, corpus ${done[4]} inputs` : 'coverage ?'),
      );
    }
  } finally {
    rmSync(corpus, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}
if (failed.length) {
  console.log(`\nfuzz targets failed: ${failed.join(', ')}`);
  process.exit(1);
}
