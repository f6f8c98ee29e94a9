// The same Express hello app on node:http. PORT from env.
import { createServer } from 'node:http';
import express from 'express';

const app = express();
app.get(process.env.ROUTE || '/', (_req, res) => res.send('Hello, World!\n'));

const server = createServer(app);
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
