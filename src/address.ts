/**
 * Address rules (as `(sph scgi)`): a leading `/` is a unix socket path; a
 * `[v6]` or `[v6]:port` or a string with more than one `:` is IPv6; otherwise
 * IPv4 (or a host name), `host` or `host:port`. TCP port defaults to 6500.
 */
import { readFileSync } from 'node:fs';
import { isIP, type ListenOptions } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
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
/** Node's own default listen backlog (net.Server, _http_server), used wherever `listen.backlog` is unset. */
export const DEFAULT_BACKLOG = 511;

/** The backlog to listen with at `resolved`. */
export function backlogOf(resolved: ResolvedAddress): number {
  return resolved.listen.backlog ?? DEFAULT_BACKLOG;
}

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
 * The longest unix socket path bind() takes, in bytes including the
 * terminating NUL (`sizeof(sun_path)`): 108 on Linux, 104 on macOS and the
 * BSDs. A longer path is silently truncated by the kernel (the socket
 * appears at another path), so it is refused before binding.
 */
export const UNIX_PATH_MAX = process.platform === 'linux' ? 108 : 104;

function invalid(message: string): ScgiError {
  return new ScgiError('ERR_SCGI_INVALID_ADDRESS', message);
}

/** A unix socket path we can bind as given: no NUL, short enough. */
function checkUnixPath(path: string): string {
  if (path.includes('\0')) throw invalid(`the unix socket path ${JSON.stringify(path)} contains a NUL byte: write the path without it`);
  const bytes = Buffer.byteLength(path);
  if (bytes + 1 > UNIX_PATH_MAX) {
    throw invalid(
      `the unix socket path is ${bytes} bytes, over the ${process.platform} limit of ${UNIX_PATH_MAX} bytes including the NUL ` +
        `(at most ${UNIX_PATH_MAX - 1}): use a shorter path, e.g. /run/<app>/scgi.sock`,
    );
  }
  return path;
}

/** A relative path given as an address: say which absolute path to write. */
function relativePath(address: string): ScgiError {
  return invalid(`a unix socket path must be absolute (start with /): write ${resolvePath(address)} (or host:port for TCP)`);
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
  if (address !== undefined && address !== null && typeof address === 'object') {
    const listen = { ...address };
    if (listen.path !== undefined) {
      if (typeof listen.path !== 'string' || !listen.path.startsWith('/')) throw relativePath(String(listen.path));
      return { kind: 'unix', path: checkUnixPath(listen.path), listen };
    }
    if (listen.port !== undefined && (!Number.isInteger(listen.port) || listen.port < 0 || listen.port > 65535)) {
      throw invalid(`address.port must be an integer from 0 to 65535, got ${String(listen.port)}`);
    }
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
  if (address.trim() === '') throw invalid(`the address is blank: write a unix socket path (/run/app/scgi.sock), host:port, or leave it out for the default`);
  if (address.includes('\0')) throw invalid(`the address ${JSON.stringify(address)} contains a NUL byte: write it without`);
  if (address.startsWith('/')) return { kind: 'unix', path: checkUnixPath(address), listen: { path: address } };
  // A path that is not absolute (./app.sock, run/app.sock, app.sock) would be taken as a host name.
  if (address.startsWith('.') || address.startsWith('~') || address.includes('/') || /\.sock(et)?$/i.test(address)) throw relativePath(address);
  if (address.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(address);
    if (!m || isIP(m[1]!) !== 6) {
      throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `invalid IPv6 address ${JSON.stringify(address)}`);
    }
    return tcp(m[1]!, m[2] !== undefined ? parsePort(m[2], address) : (port ?? DEFAULT_PORT), 6);
  }
  const colons = address.split(':').length - 1;
  if (colons === 1) {
    const [host, p] = address.split(':') as [string, string];
    if (host === '') throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `missing host in ${JSON.stringify(address)}`);
    return tcp(checkHost(host), parsePort(p, address), 4);
  }
  if (colons > 1) {
    if (isIP(address) !== 6) throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `invalid IPv6 address ${JSON.stringify(address)}`);
    return tcp(address, port ?? DEFAULT_PORT, 6);
  }
  return tcp(checkHost(address), port ?? DEFAULT_PORT, 4);
}

/** A host that looks like a dotted IPv4 address must be one (999.1.1.1 would go to DNS). */
function checkHost(host: string): string {
  if (/^[\d.]+$/.test(host) && isIP(host) !== 4) {
    throw invalid(`${JSON.stringify(host)} is not an IPv4 address (four numbers from 0 to 255, e.g. 127.0.0.1)`);
  }
  return host;
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

/** fd 3.. from systemd socket activation. */
export function systemdFd(): number {
  const pid = Number(process.env.LISTEN_PID);
  const fds = Number(process.env.LISTEN_FDS);
  if (pid !== process.pid || !(fds >= 1)) {
    throw new ScgiError('ERR_SCGI_INVALID_OPTION', `socket: 'systemd' but LISTEN_PID/LISTEN_FDS do not pass a socket to this process`);
  }
  return 3;
}
