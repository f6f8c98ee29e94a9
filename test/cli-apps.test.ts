// `scgi serve` decides what an app is by what it is (issue 12 item 7): real
// apps (Koa, Fastify, Express, fetch handlers, plain listeners) run unchanged
// from test/apps/cli/, each through the CLI process and a real SCGI request.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { request } from '../src/client/request.ts';
import { tempDir } from './helpers.ts';
import { runCli as run, trackChild, ROOT, CLI } from './cli-process.ts';

const APPS = 'test/apps/cli';
const dir = tempDir('scgi-cli-apps-');
afterAll(() => dir.cleanup());

let n = 0;
/** `scgi serve APP ...extra`, wait for the banner, send GET /x, stop. */
async function serveAndGet(app: string, extra: string[] = []): Promise<{ banner: string; status: number; body: string }> {
  const sock = join(dir.path, `a${n++}.sock`);
  const child = spawn(process.execPath, [CLI, 'serve', `${APPS}/${app}`, '--address', sock, ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', () => (/Try it/.test(out) ? resolve() : undefined));
    child.once('exit', (code) => reject(new Error(`scgi serve exited ${code}: ${out}`)));
  });
  const res = await request(sock, { uri: '/x', timeout: 5000 });
  child.kill('SIGTERM');
  return { banner: out, status: res.status, body: res.body.toString() };
}

describe('scgi serve: what the default export is', () => {
  for (const [app, label, body] of [
    ['koa-app.mjs', 'Koa app', 'koa /x\n'],
    ['fastify-app.mjs', 'Fastify app', 'fastify /x\n'],
    ['fetch-object.mjs', 'fetch app (object with fetch)', 'object /x\n'],
    ['adapter-handler.mjs', 'SCGI handler (from scgi/http or scgi/fetch)', 'adapted\n'],
    ['../../../examples/express.js', 'Express/Connect app', null],
    ['../../../examples/hono.js', 'Hono app (object with fetch)', null],
    ['../../../examples/hello.js', 'SCGI handler (scgiType)', null],
  ] as const) {
    it(`${app}: detected as ${label}`, async () => {
      const r = await serveAndGet(app);
      expect(r.banner).toContain(`(${label}, parser`);
      if (body !== null) {
        expect(r.status).toBe(200);
        expect(r.body).toBe(body);
      } else expect(r.status).toBeLessThan(500);
    });
  }

  for (const [app, hint] of [
    ['node-listener.mjs', /a function of 2 arguments/],
    ['koa-callback.mjs', /a function of 2 arguments/],
    ['fetch-2arg.mjs', /a function of 2 arguments/],
    ['fetch-0arg.mjs', /a function of 0 arguments.*no declared parameter.*cannot tell/s],
    ['node-rest.mjs', /a function of 0 arguments.*no declared parameter.*cannot tell/s],
    ['fetch-1arg.mjs', /a function of 1 argument .*one declared parameter: most likely a fetch handler \(request\), --type fetch/s],
  ] as const) {
    it(`${app}: a plain function is refused (exit 2), naming --type`, () => {
      const r = run(['serve', `${APPS}/${app}`, '--address', join(dir.path, 'never.sock')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/cannot tell what kind of app/);
      expect(r.stderr).toMatch(hint);
      expect(r.stderr).toMatch(/--type raw, --type node or --type fetch/);
      expect(r.stdout).not.toMatch(/serving/);
      // A function of no declared parameter may be any kind: no kind is named as the likely one.
      if (app === 'fetch-0arg.mjs' || app === 'node-rest.mjs') expect(r.stderr).not.toMatch(/likely/);
    });
  }

  for (const [app, type, body] of [
    ['node-listener.mjs', 'node', 'listener GET /x\n'],
    ['koa-callback.mjs', 'node', 'koa /x\n'],
    ['fetch-2arg.mjs', 'fetch', 'fetch2 /x object\n'],
    ['fetch-0arg.mjs', 'fetch', 'fetch0\n'],
    ['fetch-1arg.mjs', 'fetch', 'fetch1 /x\n'],
    ['node-rest.mjs', 'node', 'rest GET /x\n'],
  ] as const) {
    it(`${app} with --type ${type} answers 200`, async () => {
      const r = await serveAndGet(app, ['--type', type]);
      expect(r.status).toBe(200);
      expect(r.body).toBe(body);
    });
  }

  it('--type with an unknown kind, a default export that is no app: exit 2', () => {
    const bad = run(['serve', `${APPS}/fetch-0arg.mjs`, '--type', 'lambda']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--type must be raw, node or fetch/);
    const none = run(['serve', `${APPS}/not-an-app.mjs`, '--address', join(dir.path, 'never.sock')]);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/default export is number/);
  });

  it('a module that throws at load: exit 1, ERR_SCGI_APP_LOAD, distinct from an option error', () => {
    const r = run(['serve', `${APPS}/throws.mjs`, '--address', join(dir.path, 'never.sock')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot load .*throws\.mjs: boom at load/);
  });
});
