// An Express 5 app, unchanged, served over SCGI:
//   npx scgi serve examples/express.js          (detected as a Node listener)
// or in code: serve(fromNodeListener(app))
import express from 'express';
import { fileURLToPath } from 'node:url';

const app = express();
app.use(express.json());

app.get('/', (req, res) => {
  res.cookie('seen', '1');
  res.type('text').send(`Hello from Express over SCGI, ${req.ip} asked for ${req.originalUrl}\n`);
});
app.get('/users/:id', (req, res) => res.json({ id: req.params.id, query: req.query }));
app.post('/echo', (req, res) => res.status(201).json({ received: req.body }));
app.get('/old', (_req, res) => res.redirect(301, '/'));
app.get('/file', (_req, res) => res.sendFile(fileURLToPath(import.meta.url)));
app.get('/fail', () => {
  throw new Error('something broke');
});
app.use((err, _req, res, _next) => {
  res.status(500).json({ error: err.message });
});

export default app;
