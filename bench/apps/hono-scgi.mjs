// The Hono hello app (route: ROUTE, default /) over SCGI through scgi/fetch. ADDRESS from env;
// SCGI_DIST: another build of the package (bench/e2e.ts --baseline).
import { Hono } from 'hono';

const dist = process.env.SCGI_DIST;
const { serve } = await import(dist ? `${dist}/index.js` : 'scgi');
const { fromFetch } = await import(dist ? `${dist}/adapters/fetch.js` : 'scgi/fetch');

const app = new Hono();
app.get(process.env.ROUTE || '/', (c) => c.text('Hello, World!\n'));

const server = await serve(fromFetch(app), { address: process.env.ADDRESS, socketGroup: process.env.SOCKET_GROUP || undefined });
console.log(JSON.stringify({ ready: server.address() }));
