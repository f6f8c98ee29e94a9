/**
 * The file descriptor limit, seen from the accept path. When a process is
 * out of descriptors, libuv accepts each pending connection and closes it at
 * once (its EMFILE "trick"), with no callback: the front logs a reset and a
 * 502, the app sees nothing. So the server watches the descriptor number of
 * each accepted socket instead: POSIX hands out the lowest free number, so a
 * socket numbered within `FD_RESERVE` of the soft limit means the table is
 * nearly full. Such a connection is answered 503 (while there are still
 * descriptors to answer with), counted in `stats.fdExhausted` and reported.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

/** Descriptors kept free below the limit: the app's own files, and the 503s being written. */
export const FD_RESERVE = 32;

let cached: number | null | undefined;

/**
 * The soft `ulimit -n` of this process (Linux: /proc/self/limits, read once
 * per process: every server and every `inject` asks); null where it cannot
 * be read.
 */
export function openFileLimit(): number | null {
  if (cached !== undefined) return cached;
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    cached = m && m[1] !== 'unlimited' ? Number(m[1]) : null;
  } catch {
    cached = null;
  }
  return cached;
}

/** The descriptor number of an accepted socket (POSIX), or -1 when there is none to read. */
export function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}
