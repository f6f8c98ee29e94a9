/**
 * The stack of a blocked event loop, and the in-process `workerTimeout`.
 *
 * A loop stuck in `for (;;) {}` runs no timer, no IPC and no signal handler,
 * but V8 still serves inspector messages from another thread of the same
 * process: a watchdog `worker_thread` connects to the main thread
 * (`inspector.Session#connectToMainThread`, no inspector port is opened),
 * reads the requests in progress (`Runtime.evaluate` of the function the
 * servers of this process registered, `REPORT_HOOK`: a request that blocked
 * the loop as it started is in no heartbeat yet), then sends
 * `Debugger.enable` and `Debugger.pause`, reads the paused call frames and
 * resumes. The debugger is enabled only for that moment: until a report is
 * asked for, the thread costs nothing on the main thread.
 *
 * Two modes:
 * - `pipe` (a cluster worker): the primary, which decides that a worker is
 *   blocked (no heartbeat for `workerTimeout`, src/server/cluster.ts), writes
 *   `stack\n` on an extra stdio pipe given at fork (`WATCHDOG_FD_ENV` names
 *   its descriptor); the thread answers one JSON line `{ stack, requests }`.
 * - `self` (parallelism 1, no primary): the main thread stamps a
 *   SharedArrayBuffer every `HEARTBEAT_INTERVAL` ms from an unref'd timer;
 *   when the stamp is `workerTimeout` old,
 *   the thread writes the report on stderr and kills the process
 *   (SIGKILL: nothing else ends a blocked process from another thread), so
 *   its supervisor (systemd `Restart=on-failure`, examples/systemd) starts it
 *   again.
 *
 * The thread's code is a plain function run with `eval: true` (its source is
 * `threadMain.toString()`), so it works from the sources and from dist/.
 */
import { Worker } from 'node:worker_threads';
import { HEARTBEAT_INTERVAL, type InProgressRequest, MAX_REPORTED_REQUESTS, requestsInProgress } from './heartbeat.ts';
import type { HeartbeatSource } from './heartbeat.ts';

/** The environment variable naming the descriptor of a cluster worker's watchdog pipe. */
export const WATCHDOG_FD_ENV = 'SCGI_WATCHDOG_FD';
/** At most this many frames of the blocked loop are reported. */
export const MAX_FRAMES = 20;
/** ms the thread waits for the paused frames. */
export const STACK_TIMEOUT = 1000;
/** The global the thread evaluates on the main thread for the requests in progress. */
const REPORT_HOOK = 'scgi.requestsInProgress';

/** What the thread reports about the blocked loop. */
export interface LoopReport {
  /** "at fn (url:line:col)", innermost first; [] if the pause did not come. */
  stack: string[];
  /** The requests in progress when it looked, or null if it could not read them. */
  requests: InProgressRequest[] | null;
}

/** The servers of this process whose requests a report lists. */
const reported = new Set<HeartbeatSource>();

/** List `source`'s requests in progress in this process's blocked-loop reports. Returns the function that stops it. */
export function reportRequestsOf(source: HeartbeatSource): () => void {
  reported.add(source);
  const key = Symbol.for(REPORT_HOOK);
  (globalThis as Record<symbol, unknown>)[key] ??= () => {
    const all: InProgressRequest[] = [];
    for (const s of reported) all.push(...requestsInProgress(s.connections).requests);
    return all.sort((a, b) => a.start - b.start).slice(0, MAX_REPORTED_REQUESTS);
  };
  return () => reported.delete(source);
}

interface ThreadData {
  mode: 'pipe' | 'self';
  hook: string;
  fd?: number;
  stamp?: SharedArrayBuffer;
  timeout?: number;
  maxFrames: number;
  stackTimeout: number;
}

/* c8 ignore start: runs in the watchdog thread (test/supervision.test.ts covers it through processes) */
/**
 * The watchdog thread. Self-contained: it is run from its source text, with
 * only `require` and `workerData` in scope.
 */
function threadMain(): void {
  const inspector = require('node:inspector') as typeof import('node:inspector');
  const fs = require('node:fs') as typeof import('node:fs');
  const net = require('node:net') as typeof import('node:net');
  const { workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const data = workerData as ThreadData;

  /** The main thread's requests in progress and call frames ("at fn (url:line:col)"). */
  const capture = (done: (report: LoopReport) => void) => {
    const session = new inspector.Session();
    const urls = new Map<string, string>();
    let requests: InProgressRequest[] | null = null;
    let finished = false;
    const finish = (stack: string[]) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      try {
        session.post('Debugger.resume');
        session.post('Debugger.disable');
        session.disconnect();
      } catch {
        // the session may already be gone
      }
      done({ stack, requests });
    };
    const timer = setTimeout(() => finish([]), data.stackTimeout);
    try {
      session.connectToMainThread();
    } catch {
      finish([]);
      return;
    }
    session.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string } }) => urls.set(m.params.scriptId, m.params.url));
    session.on(
      'Debugger.paused',
      (m: { params: { callFrames: { functionName: string; location: { scriptId: string; lineNumber: number; columnNumber: number }; url?: string }[] } }) => {
        const stack = m.params.callFrames.slice(0, data.maxFrames).map((f) => {
          const url = f.url || urls.get(f.location.scriptId) || '<anonymous>';
          return `at ${f.functionName || '<anonymous>'} (${url}:${f.location.lineNumber + 1}:${f.location.columnNumber + 1})`;
        });
        finish(stack);
      },
    );
    const expression = `globalThis[Symbol.for(${JSON.stringify(data.hook)})]?.()`;
    session.post('Runtime.evaluate', { expression, returnByValue: true, silent: true }, (err, res) => {
      const value = (res as { result?: { value?: unknown } } | undefined)?.result?.value;
      if (!err && Array.isArray(value)) requests = value as InProgressRequest[];
      session.post('Debugger.enable', (e: unknown) => {
        if (e) finish([]);
        else session.post('Debugger.pause', (e2: unknown) => e2 && finish([]));
      });
    });
  };

  if (data.mode === 'pipe') {
    // The socket keeps this thread's loop alive; the primary asks, one line per question.
    const sock = new net.Socket({ fd: data.fd, readable: true, writable: true });
    let buffered = '';
    sock.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let nl = buffered.indexOf('\n');
      while (nl !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === 'stack') capture((report) => sock.write(`${JSON.stringify(report)}\n`));
        nl = buffered.indexOf('\n');
      }
    });
    sock.on('error', () => {});
    return;
  }

  // self: the main thread stamps `stamp`.
  const stamp = new BigInt64Array(data.stamp!);
  let reported = false;
  setInterval(
    () => {
      if (reported) return;
      const silent = Date.now() - Number(Atomics.load(stamp, 0));
      if (silent < data.timeout!) return;
      reported = true;
      capture(({ stack, requests }) => {
        const text = `scgi: [ERR_SCGI_WORKER_TIMEOUT] process ${process.pid}: its event loop did not answer for ${silent} ms (workerTimeout ${data.timeout} ms): killed with SIGKILL`;
        fs.writeSync(2, `${text}\n${describeLoop(stack, requests ?? [], Date.now()).join('\n')}\n`);
        process.kill(process.pid, 'SIGKILL');
      });
    },
    Math.min(250, data.timeout! / 4),
  );
}
/* c8 ignore stop */

/**
 * The lines of a blocked-loop report after its first: each request in
 * progress (method, URI, age) and the stack. Also run in the thread, so
 * self-contained.
 */
export function describeLoop(stack: readonly string[], requests: readonly InProgressRequest[], now: number): string[] {
  return [
    ...(requests.length === 0
      ? ['  no request in progress']
      : requests.map((r) => `  in progress: ${r.method} ${r.uri} (${((now - r.start) / 1000).toFixed(1)} s)`)),
    ...(stack.length === 0 ? ['  stack of the blocked loop: unavailable'] : ['  stack of the blocked loop:', ...stack.map((f) => `    ${f}`)]),
  ];
}

function startThread(data: Omit<ThreadData, 'hook'>): Worker {
  const source = `const describeLoop = ${describeLoop.toString()};\n(${threadMain.toString()})()`;
  const worker = new Worker(source, { eval: true, workerData: { ...data, hook: REPORT_HOOK }, stdout: false, stderr: false });
  worker.unref();
  worker.on('error', () => {});
  return worker;
}

let pipeThread: Worker | null = null;
/** In a cluster worker forked with a watchdog pipe: start the thread that answers the primary (once). Returns whether it did. */
export function startPipeWatchdog(): boolean {
  const value = process.env[WATCHDOG_FD_ENV];
  delete process.env[WATCHDOG_FD_ENV];
  const fd = Number(value);
  if (pipeThread !== null || value === undefined || value === '' || !Number.isInteger(fd)) return false;
  pipeThread = startThread({ mode: 'pipe', fd, maxFrames: MAX_FRAMES, stackTimeout: STACK_TIMEOUT });
  return true;
}

/**
 * Is this process being debugged (an inspector open, or `--inspect*` given,
 * which cluster workers inherit)? A loop paused at a breakpoint is not
 * stuck: no `workerTimeout` then.
 */
export async function debugging(): Promise<boolean> {
  if (process.execArgv.some((a) => a.startsWith('--inspect'))) return true;
  const inspector = await import('node:inspector').catch(() => null);
  return inspector !== null && inspector.url() !== undefined;
}

/** The process-wide in-process watchdog (parallelism 1): one thread for every armed server. */
interface Armed {
  source: HeartbeatSource;
  timeout: number;
}
const armed = new Set<Armed>();
let selfThread: { worker: Worker; stamp: BigInt64Array; timer: NodeJS.Timeout; timeout: number } | null = null;

function tick(): void {
  if (selfThread !== null) Atomics.store(selfThread.stamp, 0, BigInt(Date.now()));
}

/**
 * Parallelism 1: kill this process (report on stderr first) if its event
 * loop does not answer for `timeout` ms. Returns the function that disarms
 * it. With several servers, the shortest timeout applies. Not armed while an
 * inspector is attached: a loop paused at a breakpoint is not stuck.
 */
export async function armSelfWatchdog(source: HeartbeatSource, timeout: number): Promise<() => void> {
  if (timeout <= 0 || (await debugging())) return () => {};
  const entry: Armed = { source, timeout };
  armed.add(entry);
  const unreport = reportRequestsOf(source);
  restartSelf();
  return () => {
    if (!armed.delete(entry)) return;
    unreport();
    restartSelf();
  };
}

function restartSelf(): void {
  const timeout = Math.min(...[...armed].map((a) => a.timeout));
  if (selfThread !== null && selfThread.timeout === timeout) return;
  if (selfThread !== null) {
    clearInterval(selfThread.timer);
    void selfThread.worker.terminate();
    selfThread = null;
  }
  if (armed.size === 0) return;
  const shared = new SharedArrayBuffer(8);
  const stamp = new BigInt64Array(shared);
  Atomics.store(stamp, 0, BigInt(Date.now()));
  const worker = startThread({ mode: 'self', stamp: shared, timeout, maxFrames: MAX_FRAMES, stackTimeout: STACK_TIMEOUT });
  const timer = setInterval(tick, HEARTBEAT_INTERVAL);
  timer.unref();
  selfThread = { worker, stamp, timer, timeout };
}
