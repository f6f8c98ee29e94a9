// Start a real nginx (the Debian package) on a config written to a temp dir:
// foreground, its own pid file and logs, loopback only, stopped by PID.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? null;

/** Fail (not skip) in CI when nginx is missing; elsewhere say how to get it. */
export function requireNginx(): string {
  if (NGINX === null) throw new Error('nginx is not installed: apt-get install -y nginx (.ci/run does it)');
  return NGINX;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A web server front started by a test: where it listens, its error log, how to stop it. */
export interface RunningFront {
  port: number;
  url: string;
  dir: string;
  errorLog(): string;
  stop(): Promise<void>;
}

export type Nginx = RunningFront;

/** `location /` passing every request to the SCGI app on a unix socket (`extra` goes before it). */
export function unixLocation(sock: string, extra = ''): string {
  return `${extra}
    location / {
      include scgi_params;
      scgi_pass unix:${sock};
    }`;
}

/**
 * Start nginx with `serverBlock` inside http { server { listen ...; HERE } }.
 * Workers run as nobody:nogroup (as a root-started nginx does), so the app's
 * unix socket needs socketGroup 'nogroup' and a traversable directory, as in
 * production with www-data.
 */
export async function startNginx(dir: string, serverBlock: string, httpExtra = ''): Promise<Nginx> {
  const bin = requireNginx();
  const port = await freePort();
  mkdirSync(join(dir, 'logs'), { recursive: true });
  chmodSync(dir, 0o711);
  copyFileSync('/etc/nginx/scgi_params', join(dir, 'scgi_params'));
  const conf = join(dir, 'nginx.conf');
  const asRoot = process.getuid?.() === 0;
  writeFileSync(
    conf,
    `${asRoot ? 'user nobody nogroup;' : ''}
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} info;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  ${httpExtra}
  server {
    listen 127.0.0.1:${port};
    ${serverBlock}
  }
}
`,
  );
  execFileSync(bin, ['-t', '-q', '-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: 'pipe' });
  const child: ChildProcess = spawn(bin, ['-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // ready when it accepts on the port
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    try {
      await fetch(`http://127.0.0.1:${port}/__ready`, { signal: AbortSignal.timeout(500) });
      break;
    } catch {
      if (Date.now() - start > 10_000) throw new Error(`nginx did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    errorLog: () => readFileSync(join(dir, 'logs', 'error.log'), 'utf8'),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGQUIT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
