/**
 * Process signals: one SIGTERM/SIGINT/SIGHUP handler for every live server
 * in the process (not one per server), installed with the first tracked
 * server and removed with the last (but kept while a drain runs).
 *
 * - SIGTERM/SIGINT: every tracked server closes gracefully, then the process
 *   exits 0. A repeated SIGTERM during that drain changes nothing (GNU
 *   `timeout` and some orchestrators send it twice); a second SIGINT (Ctrl-C
 *   twice) aborts the servers (`abort`: no socket file is left behind) and
 *   exits 130 at once.
 * - SIGHUP never kills: a cluster primary reloads (`onHangup`), a cluster
 *   worker ignores it (its primary reloads), a server without a primary
 *   (parallelism 1) says on stderr that it keeps serving and how to reload.
 */

/** Something that closes gracefully. */
export interface Closable {
  close(): Promise<void>;
  /** Stop now (the second SIGINT): whatever must not be left behind, synchronously. */
  abort?(): void;
  /** SIGHUP: what this server does (a primary reloads); without it, the parallelism-1 warning. */
  onHangup?(): void;
}

/** What a server without a primary says on SIGHUP. */
export const HANGUP_WARNING =
  'scgi: SIGHUP ignored, still serving: a reload needs parallelism > 1 (the primary replaces the workers one by one); ' +
  'at parallelism 1 restart the process, with socket activation (docs/deployment.md) to lose no connection';

/** The exit status after a second SIGINT (128 + SIGINT, as a shell reports it). */
export const ABORT_EXIT_CODE = 130;

const live = new Set<Closable>();
let installed = false;
/** The servers a first SIGTERM/SIGINT is closing, or null before one. */
let draining: Closable[] | null = null;

function onSignal(signal: NodeJS.Signals): void {
  if (draining !== null) {
    if (signal !== 'SIGINT') return; // a repeated SIGTERM: keep draining
    for (const s of draining) {
      try {
        s.abort?.();
      } catch {
        // exiting anyway
      }
    }
    process.exit(ABORT_EXIT_CODE);
  }
  const all = [...live];
  draining = all;
  Promise.allSettled(all.map((s) => s.close())).then(() => process.exit(0));
}

function onHangup(): void {
  if (draining !== null) return;
  let warn = false;
  for (const s of live) {
    if (s.onHangup !== undefined) s.onHangup();
    else warn = true;
  }
  if (warn) console.error(HANGUP_WARNING);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHangup);
}

function uninstall(): void {
  if (!installed || draining !== null) return;
  installed = false;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('SIGHUP', onHangup);
}

/** Close `server` on SIGTERM/SIGINT, and let it answer SIGHUP (when `enabled`). Returns the function that stops tracking it. */
export function trackForSignals(server: Closable, enabled: boolean): () => void {
  if (!enabled) return () => {};
  live.add(server);
  install();
  return () => {
    live.delete(server);
    if (live.size === 0) uninstall();
  };
}
