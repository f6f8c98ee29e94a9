/**
 * The status endpoint of a cluster primary (`parallelism` > 1): served from
 * the primary's worker records (src/supervision/heartbeat.ts), which the
 * workers' heartbeats keep current, so it answers while every worker's
 * loop is blocked (their records turn `unresponsive`). The request duration
 * histogram is the workers' (each heartbeat's `durations`) plus those of the
 * workers that have exited, kept here from their last heartbeat.
 */
import cluster, { type Worker } from 'node:cluster';
import type { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { formatAddress } from '../address.ts';
import type { NormalizedOptions } from '../options.ts';
import { isHeartbeat, type WorkerRecord } from '../supervision/heartbeat.ts';
import type { ScgiStats } from '../types.ts';
import { addDurations, statusDocument, zeroDurations, type StatusDocument } from './document.ts';
import { listenQueue } from './listen-queue.ts';
import type { Durations } from './monitor.ts';
import { serveStatus, type StatusEndpoint } from './server.ts';

/** What the primary (src/server/cluster.ts) shows its status endpoint. */
export interface PrimarySource extends EventEmitter {
  readonly stats: ScgiStats;
  readonly transport: 'native' | 'net';
  workerRecords(): readonly Readonly<WorkerRecord>[];
  address(): string | AddressInfo | null;
  close(): Promise<void>;
}

/** The primary's document source: the records, the histogram of live and exited workers, the listen queue. */
export function primaryDocument(primary: PrimarySource, parallelism: number): () => StatusDocument {
  const startTime = Date.now();
  const last = new Map<Worker, Durations>();
  const gone = zeroDurations();
  const onMessage = (worker: Worker, msg: unknown) => {
    if (isHeartbeat(msg) && msg.durations !== undefined) last.set(worker, msg.durations);
  };
  const onExit = (worker: Worker) => {
    addDurations(gone, last.get(worker));
    last.delete(worker);
  };
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  primary.once('close', () => {
    cluster.off('message', onMessage);
    cluster.off('exit', onExit);
  });
  return () => {
    const durations = zeroDurations();
    addDurations(durations, gone);
    for (const h of last.values()) addDurations(durations, h);
    const address = primary.address();
    return statusDocument(
      { pid: process.pid, uptime: (Date.now() - startTime) / 1000, transport: primary.transport, address: formatAddress(address), parallelism },
      primary.workerRecords(),
      durations,
      listenQueue(address),
      primary.stats,
    );
  };
}

/** `startCluster` calls this when `statusAddress` is set: the endpoint, served by the primary. */
export async function startPrimaryStatus(primary: PrimarySource, opts: NormalizedOptions): Promise<StatusEndpoint> {
  return serveStatus(primary, opts, primaryDocument(primary, opts.parallelism));
}
