// Koa's app.callback(): a (req, res) listener, like any other.
import Koa from 'koa';
const app = new Koa();
app.use((ctx) => {
  ctx.body = `koa ${ctx.path}\n`;
});
export default app.callback();
