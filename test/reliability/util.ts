// Shared by the reliability tests: process-level exception spies, a gc() for
// memory checks, /proc readings (their servers: testServers in test/helpers.ts).
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ScgiServer } from '../../src/index.ts';
import { waitFor } from '../helpers.ts';

/**
 * Record every 'uncaughtException' and 'unhandledRejection' that reaches the
 * process while the file runs, and fail the file if there was one.
 */
export function spyOnProcessErrors(): { uncaught: unknown[]; unhandled: unknown[] } {
  const seen = { uncaught: [] as unknown[], unhandled: [] as unknown[] };
  const onUncaught = (err: unknown) => seen.uncaught.push(err);
  const onUnhandled = (reason: unknown) => seen.unhandled.push(reason);
  beforeAll(() => {
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    expect(seen.uncaught, 'uncaughtException reached the process').toEqual([]);
    expect(seen.unhandled, 'unhandledRejection reached the process').toEqual([]);
  });
  afterAll(() => {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUnhandled);
  });
  return seen;
}

/** Wait until the server has no connection left (the peer is gone). */
export async function noConnectionsLeft(server: ScgiServer, timeout = 5000): Promise<void> {
  await waitFor(async () => (await server.getConnections()) === 0, timeout);
  expect(await server.getConnections()).toBe(0);
}

let gcFn: (() => void) | null = null;
/** A real gc() in this process (vitest workers do not run with --expose-gc). */
export function gc(): void {
  if (gcFn === null) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') gcFn = g;
    else {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
  }
  gcFn();
  gcFn();
}

/** Resident set size of a process, bytes (from /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Open file descriptors of a process (from /proc). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
