// Start a real Apache httpd 2.4 (the Debian apache2 package) on a config
// written to a temp dir: foreground (-DFOREGROUND), its own ServerRoot, pid
// file, logs and mutexes, loopback only, stopped by PID. The system config in
// /etc/apache2 is never read.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { asRoot, FRONT_GROUP, FRONT_USER, freePort, requireBinary, runFront, type RunningFront } from './front.ts';

const MODULES = '/usr/lib/apache2/modules';

export function requireApache(): string {
  return requireBinary('Apache httpd', ['/usr/sbin/apache2', '/usr/sbin/httpd'], 'apache2');
}

export type Apache = RunningFront;

/**
 * Start Apache with `snippet` at server level (after Listen, the modules and
 * the basics). mpm_event with one child process; workers run as
 * nobody:nogroup when started as root, so a unix socket needs socketGroup
 * 'nogroup' and a traversable directory (www-data in production).
 */
export async function startApache(dir: string, snippet: string): Promise<Apache> {
  const bin = requireApache();
  const port = await freePort();
  mkdirSync(join(dir, 'htdocs'), { recursive: true });
  mkdirSync(join(dir, 'run'), { recursive: true });
  chmodSync(dir, 0o711);
  const conf = join(dir, 'httpd.conf');
  const errorLog = join(dir, 'error.log');
  const mod = (name: string, file: string) => `LoadModule ${name} ${MODULES}/${file}`;
  writeFileSync(
    conf,
    `ServerRoot ${dir}
DefaultRuntimeDir ${join(dir, 'run')}
PidFile ${join(dir, 'httpd.pid')}
Mutex file:${join(dir, 'run')} default
ErrorLog ${errorLog}
LogLevel warn
${mod('mpm_event_module', 'mod_mpm_event.so')}
${mod('authz_core_module', 'mod_authz_core.so')}
${mod('proxy_module', 'mod_proxy.so')}
${mod('proxy_scgi_module', 'mod_proxy_scgi.so')}
${asRoot ? `User ${FRONT_USER}\nGroup ${FRONT_GROUP}` : ''}
StartServers 1
ServerLimit 1
ThreadsPerChild 32
MaxRequestWorkers 32
Listen 127.0.0.1:${port}
ServerName 127.0.0.1
DocumentRoot ${join(dir, 'htdocs')}
${snippet}
`,
  );
  execFileSync(bin, ['-t', '-d', dir, '-f', conf], { stdio: 'pipe' });
  const proc = await runFront('apache2', bin, ['-DFOREGROUND', '-d', dir, '-f', conf], port, errorLog);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    errorLog: () => readFileSync(errorLog, 'utf8'),
    stop: () => proc.stop(),
  };
}
