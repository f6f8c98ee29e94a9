// The Express hello app (route: ROUTE, default /) over SCGI through scgi/http. ADDRESS from env;
// SCGI_DIST: another build of the package (bench/e2e.ts --baseline).
import express from 'express';

const dist = process.env.SCGI_DIST;
const { serve } = await import(dist ? `${dist}/index.js` : 'scgi');
const { fromNodeListener } = await import(dist ? `${dist}/adapters/http.js` : 'scgi/http');

const app = express();
app.get(process.env.ROUTE || '/', (_req, res) => res.send('Hello, World!\n'));

const server = await serve(fromNodeListener(app), { address: process.env.ADDRESS, socketGroup: process.env.SOCKET_GROUP || undefined });
console.log(JSON.stringify({ ready: server.address() }));
