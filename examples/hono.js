// A Hono app (a fetch handler), unchanged, served over SCGI:
//   npx scgi serve examples/hono.js            (detected: it has fetch())
// or in code: serve(fromFetch(app))
import { Hono } from 'hono';
import { stream } from 'hono/streaming';

const app = new Hono();

app.get('/', (c) => c.text(`Hello from Hono over SCGI: ${c.req.url}\n`));
app.get('/json/:name', (c) => c.json({ hello: c.req.param('name'), q: c.req.query('q') ?? null }));
app.post('/echo', async (c) => c.json({ received: await c.req.json() }, 201));
app.get('/stream', (c) =>
  stream(c, async (s) => {
    for (let i = 0; i < 5; i++) {
      await s.write(`chunk ${i}\n`);
      await s.sleep(10);
    }
  }),
);
app.get('/wait', async (c) => {
  // Resolves when the browser goes away (the signal aborts) or after 5 s.
  const aborted = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    c.req.raw.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  globalThis.__honoAborted = aborted;
  return c.text(aborted ? 'aborted' : 'waited');
});

export default app;
