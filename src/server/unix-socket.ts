/**
 * Ownership of a unix socket file, for the in-process server (`serve.ts`)
 * and the cluster primary (`cluster.ts`) alike:
 *
 * 1. `prepare()`: create the default socket's directory (private but
 *    traversable; any other directory must exist), refuse a path that is not a socket, refuse a
 *    socket a live server answers on, remove a stale one;
 * 2. `narrowUmask()` around the bind: the socket is created with exactly
 *    `mode`, never wider, even for a moment; in a worker thread, where the
 *    umask cannot be set, `bindAside()` instead: bound in a private
 *    directory next to it, given its mode and group there, then linked into
 *    place, so it is reachable only with its mode;
 * 3. `claim()` after the bind: chmod to `mode`, chown to `group`, remember
 *    the inode;
 *    (`bindListening()` is 2 and 3 in one, for every bind of a listening
 *    unix socket: the in-process server on either transport and the cluster
 *    primary);
 * 4. `release()` on close: remove the file only if it is still the socket we
 *    bound (same inode), never one a newer server put there.
 *
 * Errors from the file system are `ScgiError`s (`ERR_SCGI_SOCKET_FILE`, with
 * the errno error as `cause`).
 */
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { listenError, ScgiError } from '../errors.ts';

/** Does something accept connections on this unix socket path? */
export function probeUnixSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (alive: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(alive);
    };
    const timer = setTimeout(() => done(true), timeoutMs); // a hung listener is still a listener
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Run a file-system call; an errno error becomes `ERR_SCGI_SOCKET_FILE` with it as `cause`, and a hint. */
function fsCall<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ScgiError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const who = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? `: permission denied for this user${who}: use a directory it owns, e.g. /run/<app>/ (systemd: RuntimeDirectory=)`
        : '';
    throw new ScgiError('ERR_SCGI_SOCKET_FILE', `${what}: ${(err as Error).message}${hint}`, { cause: err });
  }
}

/** The first ancestor of `dir` (from the root down) that exists and is not a directory. */
function firstNonDirectory(dir: string): string | undefined {
  const chain: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of chain) {
    let st: ReturnType<typeof statSync> | undefined;
    try {
      st = statSync(d);
    } catch {
      return undefined;
    }
    if (!st.isDirectory()) return d;
  }
  return undefined;
}

export class UnixSocketFile {
  readonly path: string;
  readonly mode: number;
  readonly group: number | undefined;
  /** The inode of the socket we bound (0: none yet). */
  #ino = 0;
  /** Binds in progress under the narrowed umask, and the umask to restore after the last. */
  #binds = 0;
  #oldUmask = 0;

  constructor(path: string, mode: number, group: number | undefined) {
    this.path = path;
    this.mode = mode;
    this.group = group;
  }

  /**
   * Make the path ready to bind: create its parent directory (`isDefault`:
   * mode 0o711 and it must be ours), refuse a path that is not a socket or
   * that a live server answers on, remove a stale socket.
   */
  async prepare(isDefault: boolean): Promise<void> {
    const path = this.path;
    const dir = dirname(path);
    if (isDefault) {
      // 0o711: others may traverse to the socket (nginx runs as www-data) but not list it.
      fsCall(`cannot create ${dir}`, () => mkdirSync(dir, { recursive: true, mode: 0o711 }));
      const st = fsCall(`cannot stat ${dir}`, () => statSync(dir));
      if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
        throw new ScgiError(
          'ERR_SCGI_UNSAFE_SOCKET_DIR',
          `${dir} belongs to uid ${st.uid}, not to this user (${process.getuid()}): refusing to put the default socket there`,
        );
      }
    } else {
      // Only the default socket's directory is ours to create; a missing
      // directory elsewhere is a typo or a missing deployment step.
      // No `throwIfNoEntry: false`: Node 22+ also returns undefined for
      // ENOTDIR there, Node 20 throws it; both errnos are handled here alike.
      const st = fsCall(`cannot stat ${dir}`, () => {
        try {
          return statSync(dir);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOTDIR') {
            const file = firstNonDirectory(dir) ?? dir;
            throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `${file} is not a directory: fix the path ${path}`, { cause: err });
          }
          if (code === 'ENOENT') {
            throw new ScgiError(
              'ERR_SCGI_INVALID_ADDRESS',
              `the directory ${dir} does not exist: create it first (systemd: RuntimeDirectory=), or fix the path ${path}`,
            );
          }
          throw err;
        }
      });
      if (!st.isDirectory()) throw new ScgiError('ERR_SCGI_INVALID_ADDRESS', `${dir} is not a directory: fix the path ${path}`);
    }
    const st = fsCall(`cannot stat ${path}`, () => lstatSync(path, { throwIfNoEntry: false }));
    if (st === undefined) return;
    if (!st.isSocket()) {
      throw new ScgiError('ERR_SCGI_ADDRESS_NOT_SOCKET', `${path} exists and is not a socket: refusing to replace it`);
    }
    if (await probeUnixSocket(path)) {
      throw new ScgiError('ERR_SCGI_ADDRESS_IN_USE', `a server is already listening on ${path}`);
    }
    fsCall(`cannot remove the stale socket ${path}`, () => {
      try {
        unlinkSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    });
  }

  /**
   * Set the process umask to `~mode` until the returned function is called
   * (once, right after the bind). Overlapping binds (a cluster primary
   * forking several workers) share one narrowing; the last restores it.
   */
  narrowUmask(): () => void {
    if (this.#binds++ === 0) this.#oldUmask = process.umask(~this.mode & 0o777);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.#binds === 0) process.umask(this.#oldUmask);
    };
  }

  /**
   * Whether binds go through `bindAside` rather than `narrowUmask`: in a
   * worker thread, which may not set the process umask
   * (ERR_WORKER_UNSUPPORTED_OPERATION).
   */
  static get bindsAside(): boolean {
    return !isMainThread;
  }

  /**
   * Bind without touching the umask: `bind(tmp)` binds (and listens) at a
   * path in a new private directory (0o700, next to the socket, so on the
   * same file system) where nobody else can reach it; the socket gets its
   * mode and group there and is then hard-linked to `path` (EEXIST: a
   * server that came since `prepare()` keeps its socket) and the private
   * name removed. The socket is never reachable with another mode.
   */
  async bindAside<T>(bind: (tmp: string) => T | Promise<T>): Promise<T> {
    const path = this.path;
    const dir = fsCall(`cannot create a private directory next to ${path}`, () => mkdtempSync(join(dirname(path), '.scgi-')));
    const tmp = join(dir, 's');
    try {
      if (Buffer.byteLength(tmp) > 107) {
        throw new ScgiError(
          'ERR_SCGI_INVALID_ADDRESS',
          `in a worker thread the socket is bound at ${tmp} first (the umask cannot be set there), which is longer than a unix socket path may be: use a shorter path`,
        );
      }
      const result = await bind(tmp);
      fsCall(`cannot chmod ${tmp}`, () => chmodSync(tmp, this.mode));
      if (this.group !== undefined) fsCall(`cannot chown ${tmp} to gid ${this.group}`, () => chownSync(tmp, -1, this.group!));
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new ScgiError('ERR_SCGI_ADDRESS_IN_USE', `a server is already listening on ${path}`, { cause: err });
        }
        fsCall(`cannot link the socket to ${path}`, () => {
          throw err;
        });
      }
      return result;
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // not bound
      }
      rmdirSync(dir);
    }
  }

  /**
   * The one listen-under-umask sequence: `bind(path, bound)` creates the
   * listening socket at `path` (this file's path under the narrowed umask;
   * in a worker thread a private path, then linked into place) and calls
   * `bound()` as soon as the bind has happened, if it resolves later; then
   * the file is claimed. An errno error from `bind` becomes `listenError`
   * on this path; if the claim fails, `unbind(result)` undoes the bind.
   */
  async bindListening<T>(bind: (path: string, bound: () => void) => T | Promise<T>, unbind?: (result: T) => void): Promise<T> {
    const guarded = async (path: string, bound: () => void): Promise<T> => {
      try {
        return await bind(path, bound);
      } catch (err) {
        throw err instanceof ScgiError ? err : listenError(err as NodeJS.ErrnoException, this.path);
      }
    };
    let result: T;
    if (UnixSocketFile.bindsAside) {
      result = await this.bindAside((tmp) => guarded(tmp, () => {}));
    } else {
      // The umask is restored right after the bind (a synchronous part of
      // listen()), so nothing else in the process creates files under it.
      const bound = this.narrowUmask();
      try {
        result = await guarded(this.path, bound);
      } finally {
        bound();
      }
    }
    try {
      this.claim();
    } catch (err) {
      unbind?.(result);
      throw err;
    }
    return result;
  }

  /** Run `fn` under the process's own umask, even while a bind has it narrowed. */
  outsideNarrowing<T>(fn: () => T): T {
    if (this.#binds === 0) return fn();
    process.umask(this.#oldUmask);
    try {
      return fn();
    } finally {
      process.umask(~this.mode & 0o777);
    }
  }

  /** After the bind: set the mode and group, and remember which file is ours. */
  claim(): void {
    const path = this.path;
    fsCall(`cannot chmod ${path}`, () => chmodSync(path, this.mode));
    if (this.group !== undefined) fsCall(`cannot chown ${path} to gid ${this.group}`, () => chownSync(path, -1, this.group!));
    this.#ino = fsCall(`cannot stat ${path}`, () => lstatSync(path).ino);
  }

  /** Remove the socket file if it is still the one we bound (libuv may have unlinked it already). */
  release(): void {
    const ino = this.#ino;
    if (ino === 0) return;
    this.#ino = 0;
    try {
      const st = lstatSync(this.path);
      if (st.isSocket() && st.ino === ino) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
