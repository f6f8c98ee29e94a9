/**
 * scgi: an SCGI application server for Node.js.
 *
 *   import { serve } from 'scgi';
 *   await serve((headers, client) => {
 *     client.writeHead(200, { 'Content-Type': 'text/plain' });
 *     client.end(`Hello from ${headers.get('REQUEST_URI')}\n`);
 *   });
 */
export { serve, defaultAddress, type ServeOptions, type ScgiServer } from './server.ts';
export { ScgiClient, type Handler, type ScgiStats } from './connection.ts';
export { ScgiHeaders, type HeaderEncoding } from './headers.ts';
export { ScgiError, type ScgiErrorCode } from './errors.ts';
export { readHeader, type ReadHeaderOptions } from './read-header.ts';
export { parserInfo, type ParserInfo } from './parser/index.ts';
export { resolveAddress, formatAddress, DEFAULT_PORT } from './address.ts';
export type { OutgoingHeaders } from './response.ts';
export { inject, type InjectOptions } from './inject.ts';
export { httpHeaders, requestTarget } from './cgi.ts';
export type { ClientRequest, ClientResponse } from './client.ts';
