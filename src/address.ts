/**
 * Address rules (as `(sph scgi)`): a leading `/` is a unix socket path; a
 * `[v6]` or `[v6]:port` or a string with more than one `:` is IPv6; otherwise
 * IPv4 (or a host name), `host` or `host:port`. TCP port defaults to 6500.
 */
import { readFileSync } from 'node:fs';
import { isIP, type ListenOptions } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScgiError } from './errors.ts';

export const DEFAULT_PORT = 6500;

/** A resolved listening address. */
export type ResolvedAddress =
  | { kind: 'unix'; path: string; listen: ListenOptions }
  | { kind: 'tcp'; host: string; port: number; family: 4 | 6; listen: ListenOptions }
  | { kind: 'custom'; listen: ListenOptions };

function uid(): number | string {
  return typeof process.getuid === 'function' ? process.getuid() : 'user';
}

/** The default socket path: `/tmp/<uid>/scgi`, as `(sph scgi)` uses. */
export function defaultAddress(): string {
  // The seed hard-codes /tmp; honour TMPDIR only where /tmp is not the convention.
  const base = process.platform === 'win32' ? tmpdir() : '/tmp';
  return join(base, String(uid()), 'scgi');
}

function parsePort(text: string, whole: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `invalid port in address ${JSON.stringify(whole)}`);
  }
  return Number(text);
}

/**
 * Resolve `address`/`port` options into listen options.
 * - no address, no port: the default unix socket
 * - port only: 127.0.0.1:port
 */
export function resolveAddress(address?: string | ListenOptions, port?: number): ResolvedAddress {
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `port must be an integer 0-65535, got ${String(port)}`);
  }
  if (address !== undefined && typeof address === 'object') {
    const listen = { ...address };
    if (listen.path !== undefined) return { kind: 'unix', path: listen.path, listen };
    if (listen.port !== undefined || listen.host !== undefined) {
      const host = listen.host ?? '127.0.0.1';
      const p = listen.port ?? port ?? DEFAULT_PORT;
      return { kind: 'tcp', host, port: p, family: isIP(host) === 6 ? 6 : 4, listen: { ...listen, host, port: p } };
    }
    return { kind: 'custom', listen };
  }
  if (address === undefined || address === '') {
    if (port !== undefined) return tcp('127.0.0.1', port, 4);
    const path = defaultAddress();
    return { kind: 'unix', path, listen: { path } };
  }
  if (typeof address !== 'string') {
    throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `address must be a string or net.ListenOptions`);
  }
  if (address.startsWith('/')) return { kind: 'unix', path: address, listen: { path: address } };
  if (address.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(address);
    if (!m || isIP(m[1]!) !== 6) {
      throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `invalid IPv6 address ${JSON.stringify(address)}`);
    }
    return tcp(m[1]!, m[2] !== undefined ? parsePort(m[2], address) : port ?? DEFAULT_PORT, 6);
  }
  const colons = address.split(':').length - 1;
  if (colons === 1) {
    const [host, p] = address.split(':') as [string, string];
    if (host === '') throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `missing host in ${JSON.stringify(address)}`);
    return tcp(host, parsePort(p, address), 4);
  }
  if (colons > 1) {
    if (isIP(address) !== 6) throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `invalid IPv6 address ${JSON.stringify(address)}`);
    return tcp(address, port ?? DEFAULT_PORT, 6);
  }
  return tcp(address, port ?? DEFAULT_PORT, 4);
}

function tcp(host: string, port: number, family: 4 | 6): ResolvedAddress {
  return { kind: 'tcp', host, port, family, listen: { host, port } };
}

/** Human form of an address: `unix:/path`, `127.0.0.1:6500`, `[::1]:6500`. */
export function formatAddress(a: string | { address: string; port: number; family?: string | number } | null): string {
  if (a === null) return '(not listening)';
  if (typeof a === 'string') return `unix:${a}`;
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Numeric gid for a group name or number, from /etc/group. */
export function resolveGroup(group: string | number): number {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new ScgiError('ERR_SCGI_INVALID_OPTION', `socketGroup: no group named ${JSON.stringify(group)} in /etc/group`);
}
