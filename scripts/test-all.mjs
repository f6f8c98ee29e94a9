#!/usr/bin/env node
// The whole test suite, as the README and CI run it:
//   0. npm run lint (Biome: lint rules and formatting of src/, test/, bench/, scripts/),
//   1. cargo fmt --check, cargo clippy (warnings are errors) and cargo test
//      for the Rust crates (when cargo is present), then the parser's fuzz
//      targets for 60 s each (scripts/fuzz.mjs; when nightly and cargo-fuzz
//      are present, required in CI),
//   2. the vitest suite with SCGI_PARSER=native (fails if the addon did not load),
//   3. the vitest suite again with SCGI_PARSER=js (the pure-TS fallback),
//   4. on Linux, the server, reliability, adapter, front and framework suites
//      again with SCGI_TRANSPORT=net: step 2 ran them on the native transport
//      (the default where the addon has it; src/transport/native.ts), step 3
//      on net with the TS parser, this one on net with the native parser.
// Before the vitest passes, the Next.js app of test/frameworks/next.test.ts is
// built once (test/frameworks/next-build.ts, in a temp dir removed at the
// end) and handed to every pass in SCGI_NEXT_DIR; a SCGI_NEXT_DIR given by
// the caller (.ci/run) is used as it is.
// Without cargo (a machine with no Rust), steps 1 and 2 are reported as not
// run and the command fails in CI, passes with a warning elsewhere.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const hasCargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0;
const ci = Boolean(process.env.CI);
const totals = { passed: 0, failed: 0, skipped: 0 };
const failedSteps = [];
const work = mkdtempSync(join(tmpdir(), 'scgi-test-all-'));
// test/install.test.ts (slow: packs the package and installs it, with its own
// child processes whatever SCGI_PARSER says) runs once per test:all: in the
// native pass when there is one, left out of the passes after it.
const ONCE = ['--exclude', 'test/install.test.ts'];

function step(name, cmd, args, env = {}) {
  console.log(`\n==> ${name}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) failedSteps.push(name);
  return r.status === 0;
}

function vitest(parser, transport = null, files = []) {
  const label = transport === null ? `SCGI_PARSER=${parser}` : `SCGI_PARSER=${parser} SCGI_TRANSPORT=${transport}`;
  const out = join(work, `vitest-${parser}-${transport ?? 'default'}.json`);
  const env = { SCGI_PARSER: parser };
  if (transport !== null) env.SCGI_TRANSPORT = transport;
  step(`vitest (${label})`, 'npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...files], env);
  try {
    const j = JSON.parse(readFileSync(out, 'utf8'));
    totals.passed += j.numPassedTests;
    totals.failed += j.numFailedTests;
    totals.skipped += j.numPendingTests + j.numTodoTests;
    console.log(`    ${label}: ${j.numPassedTests} passed, ${j.numFailedTests} failed`);
  } catch {
    failedSteps.push(`vitest (${label}) wrote no results`);
  }
}

step('lint', 'npm', ['run', 'lint']);
let ownNextDir = null;
if (!process.env.SCGI_NEXT_DIR) {
  console.log('\n==> next build (test/frameworks/next-build.ts), once for every vitest pass');
  const r = spawnSync(process.execPath, ['--import', './scripts/ts-loader.mjs', 'test/frameworks/next-build.ts'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (r.status === 0) {
    ownNextDir = r.stdout.trim().split('\n').at(-1);
    process.env.SCGI_NEXT_DIR = ownNextDir;
  } else {
    failedSteps.push('next build');
  }
}
if (hasCargo) {
  step('cargo fmt', 'cargo', ['fmt', '--all', '--check']);
  step('cargo fmt (fuzz/)', 'cargo', ['fmt', '--check', '--manifest-path', 'fuzz/Cargo.toml']);
  step('cargo clippy', 'cargo', ['clippy', '--workspace', '--all-targets', '--quiet', '--', '-D', 'warnings', '-D', 'clippy::undocumented_unsafe_blocks']);
  // scgi-napi's state-machine property test counts the process's open
  // descriptors before and after (a leak check): its other tests open and
  // close sockets, so that crate's tests run one at a time.
  step('cargo test', 'cargo', ['test', '--workspace', '--quiet', '--exclude', 'scgi-napi']);
  step('cargo test (scgi-napi, one test at a time)', 'cargo', ['test', '-p', 'scgi-napi', '--quiet', '--', '--test-threads=1']);
  if (spawnSync('cargo', ['+nightly', 'fuzz', '--version'], { stdio: 'ignore' }).status === 0) {
    step('cargo fuzz (60 s per target)', 'node', ['scripts/fuzz.mjs']);
  } else {
    console.log('\n==> nightly Rust or cargo-fuzz not found: skipping the fuzz run (scripts/fuzz.mjs)');
    if (ci) failedSteps.push('no nightly + cargo-fuzz in CI');
  }
  vitest('native');
} else {
  console.log('\n==> cargo not found: skipping the Rust tests and the native-parser run');
  if (ci) failedSteps.push('no cargo in CI');
}
vitest('js', null, hasCargo ? ONCE : []);
if (hasCargo && process.platform === 'linux') {
  // The suites that go through serve(): on net with the native parser too.
  vitest('native', 'net', [
    'test/server.test.ts',
    'test/reliability',
    'test/fronts',
    'test/adapters.test.ts',
    'test/frameworks',
    'test/backpressure.test.ts',
    'test/interop.test.ts',
    'test/transport.test.ts',
    'test/transport-native.test.ts',
    'test/cli.test.ts',
    'test/process.test.ts',
    'test/socket-mode.test.ts',
    'test/unix-socket.test.ts',
  ]);
}
rmSync(work, { recursive: true, force: true });
if (ownNextDir !== null) rmSync(ownNextDir, { recursive: true, force: true });

console.log(`\nsteps failed: ${failedSteps.length ? failedSteps.join('; ') : 'none'}`);
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(failedSteps.length === 0 && totals.failed === 0 ? 0 : 1);
