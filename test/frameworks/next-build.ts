// The Next.js app of test/frameworks/next.test.ts (test/apps/next-app), built
// once per run: `next build` in a temp dir (a copy of the app, node_modules a
// link to the repo's). scripts/test-all.mjs builds it before its vitest passes
// and hands the dir over in SCGI_NEXT_DIR, so that every pass reuses one
// build; a vitest run on its own builds it in beforeAll. webpack, not
// Turbopack: Turbopack refuses a node_modules link that leaves the app's dir.
//
//   node --import ./scripts/ts-loader.mjs test/frameworks/next-build.ts   prints the dir
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = join(ROOT, 'test', 'apps', 'next-app');
/** A cold build on a busy 2-core machine takes about a minute; this bounds it. */
export const NEXT_BUILD_TIMEOUT = 10 * 60_000;

export function isBuilt(dir: string | undefined): dir is string {
  return dir !== undefined && dir !== '' && existsSync(join(dir, '.next', 'BUILD_ID'));
}

/** Build the app in a new temp dir; returns it (the caller removes it) and the seconds the build took. */
export function buildNextApp(): { dir: string; seconds: number } {
  const dir = mkdtempSync(join(tmpdir(), 'scgi-next-'));
  try {
    cpSync(APP, dir, { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const started = Date.now();
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'next', 'dist', 'bin', 'next'), 'build', '--webpack'], {
      cwd: dir,
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NODE_ENV: 'production' },
      encoding: 'utf8',
      timeout: NEXT_BUILD_TIMEOUT,
    });
    if (r.status !== 0 || !isBuilt(dir)) throw new Error(`next build failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
    return { dir, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { dir, seconds } = buildNextApp();
  console.error(`next build: ${seconds.toFixed(1)} s`);
  console.log(dir);
}
