// What the Apache and lighttpd helpers share: find a binary (fail, never skip,
// when it is missing), run a front in the foreground, wait until it accepts
// on its loopback port, stop it by PID (SIGTERM, then SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';

export { freePort, type RunningFront } from './nginx.ts';

/** Workers of a front started as root run as this user and group (as www-data in production). */
export const FRONT_USER = 'nobody';
export const FRONT_GROUP = 'nogroup';
export const asRoot = process.getuid?.() === 0;

/**
 * The first of `candidates` that exists. Throws when none does: the front
 * tests fail (never skip), in CI and elsewhere, and say how to install it.
 */
export function requireBinary(name: string, candidates: string[], pkg: string): string {
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) {
    throw new Error(
      `${name} is not installed (looked for ${candidates.join(', ')}): apt-get install -y nginx apache2 lighttpd ` +
        `(.ci/run does it; the ${pkg} package)${process.env.CI ? ' [CI]' : ''}`,
    );
  }
  return found;
}

/** Resolves when something accepts a TCP connection on host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface FrontProcess {
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after `timeout` ms; resolves once it exited. */
  stop(timeout?: number): Promise<void>;
  /** What it wrote on stdout and stderr. */
  output(): string;
}

/** Spawn a front in the foreground and wait until it accepts on 127.0.0.1:port. */
export async function runFront(name: string, bin: string, args: string[], port: number, logFile?: string): Promise<FrontProcess> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = logFile && existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}): ${output}\n${log}`);
    }
    if (await accepts('127.0.0.1', port)) break;
    if (Date.now() - started > 10_000) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not accept on 127.0.0.1:${port} within 10 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    output: () => output,
    stop: async (timeout = 5000) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeout);
      await exited;
      clearTimeout(t);
    },
  };
}
