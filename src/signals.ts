/**
 * Process signals: one SIGTERM/SIGINT handler for every live server in the
 * process (not one per server), installed with the first tracked server and
 * removed with the last. On a signal every tracked server closes gracefully,
 * then the process exits 0. (A cluster primary also reloads on SIGHUP: that
 * one is its own, in `cluster.ts`.)
 */

/** Something that closes gracefully. */
export interface Closable {
  close(): Promise<void>;
}

const live = new Set<Closable>();
let installed = false;

function onTerminate(): void {
  uninstall();
  const all = [...live];
  Promise.allSettled(all.map((s) => s.close())).then(() => process.exit(0));
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('SIGTERM', onTerminate);
  process.on('SIGINT', onTerminate);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('SIGTERM', onTerminate);
  process.off('SIGINT', onTerminate);
}

/** Close `server` on SIGTERM/SIGINT (when `enabled`). Returns the function that stops tracking it. */
export function trackForSignals(server: Closable, enabled: boolean): () => void {
  if (!enabled) return () => {};
  live.add(server);
  install();
  return () => {
    live.delete(server);
    if (live.size === 0) uninstall();
  };
}
