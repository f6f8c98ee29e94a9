// A Koa app instance: detected (callback + use + middleware).
import Koa from 'koa';
const app = new Koa();
app.use((ctx) => {
  ctx.body = `koa ${ctx.path}\n`;
});
export default app;
