// The same Hono hello app on @hono/node-server (node:http). PORT from env.
import { Hono } from 'hono';
import { serve } from '@hono/node-server';

const app = new Hono();
app.get(process.env.ROUTE || '/', (c) => c.text('Hello, World!\n'));

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' }, () => console.log('ready'));
server.keepAliveTimeout = 60_000;
process.on('SIGTERM', () => process.exit(0));
