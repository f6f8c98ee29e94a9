// scgi/client against another SCGI implementation: the reference server by the
// protocol's author (PyPI `scgi`, installed by .ci/run). Fails, not skips, when
// it is missing: `python3 -m pip install scgi==2.2`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { request } from '../src/client/request.ts';
import { bigBody } from './helpers.ts';
import { freePort } from './fronts/nginx.ts';

const SERVER = fileURLToPath(new URL('./apps/python-scgi-server.py', import.meta.url));
let child: ChildProcess;
let address: string;

beforeAll(async () => {
  const check = spawnSync('python3', ['-c', 'import scgi.scgi_server'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`the reference SCGI server is not installed: python3 -m pip install scgi==2.2\n${check.stderr}`);
  const port = await freePort();
  address = `127.0.0.1:${port}`;
  child = spawn('python3', [SERVER, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`python scgi server exited ${code}`)));
  });
  // it prints before it binds: wait until it accepts
  for (let i = 0; i < 50; i++) {
    try {
      await request(address, { timeout: 1000 });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

afterAll(() => {
  // SIGTERM to the process group is not needed: the pre-forking server's children exit when it does.
  child?.kill('SIGTERM');
});

describe('scgi/client ↔ the reference Python SCGI server', () => {
  it('GET: the server sees our CGI variables, we parse its CGI response', async () => {
    const res = await request(address, { uri: '/path?q=1', headers: { 'X-Token': 'abc', 'Content-Type': 'text/x' } });
    expect(res.status).toBe(201);
    expect(res.statusText).toBe('Created');
    expect(res.headers['x-server']).toBe('python-scgi');
    const text = res.body.toString('latin1');
    for (const line of [
      'CONTENT_LENGTH=0',
      'SCGI=1',
      'REQUEST_METHOD=GET',
      'REQUEST_URI=/path?q=1',
      'QUERY_STRING=q=1',
      'HTTP_X_TOKEN=abc',
      'CONTENT_TYPE=text/x',
    ]) {
      expect(text).toContain(`${line}\n`);
    }
  });

  it('POST 3 MiB: the body arrives byte-exact', async () => {
    const body = bigBody();
    const res = await request(address, { method: 'POST', uri: '/up', body });
    const sep = res.body.indexOf('\n\n');
    expect(res.body.subarray(0, sep).toString()).toContain(`CONTENT_LENGTH=${body.length}`);
    expect(res.body.subarray(sep + 2).equals(body)).toBe(true);
  });
});
