/**
 * The listen queue of the SCGI socket: connections the kernel accepted that
 * no worker has taken yet (uWSGI's "listen queue", PHP-FPM's "listen
 * queue"). Linux only; elsewhere, and where the kernel does not say, null.
 *
 * - Unix socket: `/proc/net/unix` names the listening socket's inode (by
 *   path), but not its queue; the addon asks the kernel for it through
 *   sock_diag (`unixListenQueue`, crates/scgi-napi/src/diag.rs). Without the
 *   addon (`SCGI_PARSER=js`, none built) the depth is unknown: null.
 * - TCP: `/proc/net/tcp` and `/proc/net/tcp6` give a listening socket's
 *   accept queue as its `rx_queue`.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { loadAddon } from '../parser/native.ts';
import { parserInfo } from '../parser/index.ts';

type QueueAddon = { unixListenQueue?: (inode: number) => [number, number] | undefined };

function readProc(file: string): string | null {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return null;
  }
}

/** The inode of the listening unix socket bound at `path` (null: none listed). */
export function unixSocketInode(path: string, table = readProc('/proc/net/unix')): number | null {
  if (table === null) return null;
  // Num RefCount Protocol Flags Type St Inode Path; listening: Flags 00010000 (__SO_ACCEPTCON), St 01.
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[7] !== path) continue;
    if ((Number.parseInt(f[3]!, 16) & 0x10000) === 0) continue;
    const ino = Number(f[6]);
    if (Number.isInteger(ino) && ino > 0) return ino;
  }
  return null;
}

function unixQueue(path: string): number | null {
  if (process.platform !== 'linux' || parserInfo.forced === 'js') return null;
  const ino = unixSocketInode(path);
  if (ino === null) return null;
  let addon: QueueAddon;
  try {
    addon = loadAddon() as unknown as QueueAddon;
  } catch {
    return null;
  }
  if (typeof addon.unixListenQueue !== 'function') return null;
  return addon.unixListenQueue(ino)?.[0] ?? null;
}

/**
 * The accept queue of the socket listening on `port` in a `/proc/net/tcp`
 * table (null: not listed). Fields: sl local_address rem_address st
 * tx_queue:rx_queue ...; a listening socket has st 0A and its rx_queue is
 * the number of connections waiting to be accepted.
 */
export function tcpQueueFrom(table: string, port: number): number | null {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let total: number | null = null;
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[3] !== '0A' || !f[1]!.endsWith(`:${hexPort}`)) continue;
    const rx = Number.parseInt(f[4]!.split(':')[1] ?? '', 16);
    if (Number.isInteger(rx)) total = (total ?? 0) + rx;
  }
  return total;
}

function tcpQueue(port: number): number | null {
  if (process.platform !== 'linux') return null;
  let total: number | null = null;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const table = readProc(file);
    const n = table === null ? null : tcpQueueFrom(table, port);
    if (n !== null) total = (total ?? 0) + n;
  }
  return total;
}

/** The listen queue depth of the socket at `address` (what `server.address()` says), or null where it is not known. */
export function listenQueue(address: string | AddressInfo | null): number | null {
  if (address === null) return null;
  if (typeof address === 'string') return unixQueue(address);
  return tcpQueue(address.port);
}
