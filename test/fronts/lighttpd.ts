// Start a real lighttpd 1.4 (the Debian package; mod_scgi is built in) on a
// config written to a temp dir: foreground (-D), its own pid file, logs and
// upload dir, loopback only, stopped by PID. /etc/lighttpd is never read.
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { asRoot, FRONT_GROUP, FRONT_USER, freePort, requireBinary, runFront, type RunningFront } from './front.ts';

export function requireLighttpd(): string {
  return requireBinary('lighttpd', ['/usr/sbin/lighttpd', '/usr/bin/lighttpd'], 'lighttpd');
}

export type Lighttpd = RunningFront;

/**
 * Start lighttpd with `snippet` appended to the global config (it must set
 * scgi.server). Started as root it drops to nobody:nogroup, so a unix socket
 * needs socketGroup 'nogroup' and a traversable directory (www-data in
 * production).
 */
export async function startLighttpd(dir: string, snippet: string): Promise<Lighttpd> {
  const bin = requireLighttpd();
  const port = await freePort();
  const uploads = join(dir, 'uploads');
  mkdirSync(join(dir, 'htdocs'), { recursive: true });
  mkdirSync(uploads, { recursive: true });
  chmodSync(dir, 0o711);
  const errorLog = join(dir, 'error.log');
  writeFileSync(errorLog, '');
  if (asRoot) {
    // lighttpd buffers request bodies in upload-dirs after dropping privileges
    const uid = Number(execFileSync('id', ['-u', FRONT_USER]).toString().trim());
    const gid = Number(execFileSync('getent', ['group', FRONT_GROUP]).toString().split(':')[2]);
    chownSync(uploads, uid, gid);
    chownSync(errorLog, uid, gid);
  }
  const conf = join(dir, 'lighttpd.conf');
  writeFileSync(
    conf,
    `server.document-root = "${join(dir, 'htdocs')}"
server.bind = "127.0.0.1"
server.port = ${port}
server.pid-file = "${join(dir, 'lighttpd.pid')}"
server.errorlog = "${errorLog}"
server.upload-dirs = ( "${uploads}" )
server.max-worker = 0
${asRoot ? `server.username = "${FRONT_USER}"\nserver.groupname = "${FRONT_GROUP}"` : ''}
${snippet}
`,
  );
  execFileSync(bin, ['-t', '-f', conf], { stdio: 'pipe' });
  const proc = await runFront('lighttpd', bin, ['-D', '-f', conf], port, errorLog);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    errorLog: () => readFileSync(errorLog, 'utf8'),
    stop: () => proc.stop(),
  };
}
