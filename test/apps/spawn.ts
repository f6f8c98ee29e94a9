// Start a test app as its own process and wait for its JSON `ready` line;
// every later stdout line (workerExit, reloaded, arrivals...) is collected.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface AppProcess<Ready> {
  child: ChildProcess;
  /** Every JSON line the app printed, in order. */
  lines: Record<string, unknown>[];
  /** The first line that has a `ready` key. */
  ready: Ready;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Spawn `argv` (e.g. [node, app.mjs], or a wrapper that execs it) with `env` added. */
export async function spawnApp<Ready>(argv: string[], env: Record<string, string>, track: ChildProcess[]): Promise<AppProcess<Ready>> {
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  track.push(child);
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ready = await new Promise<Ready>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as Record<string, unknown>;
      lines.push(msg);
      if ('ready' in msg) resolve(msg as Ready);
    });
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited ${code} before it was ready`)));
  });
  return { child, lines, ready, exited };
}
