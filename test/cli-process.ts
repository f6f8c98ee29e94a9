/**
 * The `scgi` command as a process, from the built package (dist/cli/main.js), for
 * test/cli*.test.ts. Importing this registers an afterEach that kills every
 * `scgi serve` started through `serveCli` in that test file.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

const children: ChildProcess[] = [];
/** Kill `child` after the current test if it is still running. */
export function trackChild(child: ChildProcess): ChildProcess {
  children.push(child);
  return child;
}
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Run `scgi ARGS` to completion. */
export function runCli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
}

/** Start `scgi serve ARGS` and wait until its stdout or stderr has printed `until`. */
export async function serveCli(args: string[], until: RegExp): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  await new Promise<void>((resolve, reject) => {
    const check = () => (until.test(out) ? resolve() : undefined);
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => reject(new Error(`scgi serve exited ${code}: ${out}`)));
  });
  return { child, out: () => out };
}
