// A handler that fails after part of its response is out: over TCP the server
// resets the connection, so nginx cuts the browser's response instead of
// passing a truncated body on as complete.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serve, type ScgiServer } from '../../src/index.ts';
import { tempDir } from '../helpers.ts';
import { startNginx, type Nginx } from './nginx.ts';

const dir = tempDir('scgi-trunc-');
let app: ScgiServer;
let nginx: Nginx;

beforeAll(async () => {
  app = await serve(
    async (headers, client) => {
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.write('partial ');
      await new Promise((r) => setTimeout(r, 20));
      if (headers.get('REQUEST_URI') === '/destroy') client.destroy();
      else throw new Error('after a partial write');
    },
    { address: '127.0.0.1:0', handleSignals: false, onError: () => {} },
  );
  const { port } = app.address() as { port: number };
  nginx = await startNginx(dir.path, `location / { include scgi_params; scgi_pass 127.0.0.1:${port}; }`);
});

afterAll(async () => {
  await nginx?.stop();
  await app?.close();
  dir.cleanup();
});

for (const uri of ['/throw', '/destroy']) {
  it(`${uri} after a partial write: the browser sees an incomplete response, not a complete 200`, async () => {
    const res = await fetch(`${nginx.url}${uri}`);
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
    expect(nginx.errorLog()).toMatch(/reset by peer/);
  });
}
