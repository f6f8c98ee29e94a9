/**
 * scgi: an SCGI application server for Node.js.
 *
 *   import { serve } from 'scgi';
 *   await serve((headers, client) => {
 *     client.writeHead(200, { 'Content-Type': 'text/plain' });
 *     client.end(`Hello from ${headers.get('REQUEST_URI')}\n`);
 *   });
 */
export { serve, defaultAddress } from './server/serve.ts';
export type { ServeOptions } from './options.ts';
export type { ScgiServer, ScgiStats } from './types.ts';
export { ScgiClient, type Handler } from './connection/scgi-client.ts';
export type { TransportSocket } from './transport/types.ts';
export { ScgiHeaders, type HeaderEncoding } from './protocol/scgi-headers.ts';
export { ScgiError, type ScgiErrorCode } from './errors.ts';
export { readHeader, type ReadHeaderOptions } from './protocol/header-from-stream.ts';
export { parserInfo, type ParserInfo } from './parser/index.ts';
export type { OutgoingHeaders } from './protocol/response.ts';
export type { AccessLogEntry, SlowRequest } from './status/monitor.ts';
export { registerMetrics, type MetricsRegistry } from './status/prom-client.ts';
export type { StatusDocument, WorkerStatus, WorkerState, Replacements } from './status/document.ts';
export { inject, type InjectOptions } from './server/inject.ts';
