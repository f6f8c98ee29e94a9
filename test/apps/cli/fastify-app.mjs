// A Fastify app instance: detected (routing + ready + inject).
import Fastify from 'fastify';
const app = Fastify();
app.get('/*', async (req) => `fastify ${req.url}\n`);
export default app;
