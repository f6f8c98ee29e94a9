// The status endpoint at parallelism 1 (statusAddress; src/status/): GET
// /status (JSON) and /metrics (Prometheus text and OpenMetrics, read by
// Python's prometheus_client), on both transports.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serve, type Handler, type ServeOptions } from '../src/index.ts';
import { scgiRequest, testServers, serveInWorkerThread, tempDir, TRANSPORTS, waitFor } from './helpers.ts';
import { parseMetrics, sampleValue, statusGet } from './status-metrics.ts';

describe.each(TRANSPORTS)('status endpoint, parallelism 1 (%s)', (transport) => {
  const s = testServers({ transport });
  let dir: { path: string; cleanup(): void } | null = null;
  afterEach(() => {
    dir?.cleanup();
    dir = null;
  });

  async function start(handler: Handler, options: ServeOptions = {}) {
    dir = tempDir();
    const status = join(dir.path, 'status.sock');
    const { address } = await s.start(handler, { statusAddress: status, ...options });
    return { address, status };
  }

  it('GET /status: totals and the one worker after a known number of requests; busy with the oldest request while one runs', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const { address, status } = await start(async (headers, client) => {
      if (headers.get('REQUEST_URI') === '/hold') await held;
      client.writeHead(200, { 'Content-Type': 'text/plain' });
      client.end('ok\n');
    });
    for (let i = 0; i < 5; i++) expect((await scgiRequest({ path: address }, { uri: `/r${i}` })).status).toBe(200);
    const idle = JSON.parse((await statusGet(status, '/status')).body);
    expect(idle.server).toMatchObject({ pid: process.pid, transport, parallelism: 1, address: `unix:${address}` });
    expect(typeof idle.server.version).toBe('string');
    expect(idle.server.uptime).toBeGreaterThanOrEqual(0);
    expect(idle.totals.requests).toBe(5);
    expect(idle.totals.connections).toBe(5);
    expect(idle.totals.inProgress).toBe(0);
    expect(idle.workers).toHaveLength(1);
    expect(idle.workers[0]).toMatchObject({ pid: process.pid, state: 'idle', requests: 5, inProgress: 0, oldestRequest: null });
    expect(idle.workers[0].rss).toBeGreaterThan(0);
    expect(idle.workers[0].heapUsed).toBeGreaterThan(0);
    expect(idle.workers[0].elu).toBeGreaterThanOrEqual(0);
    expect(idle.workers[0].replacements).toEqual({ crash: 0, timeout: 0, recycle: 0, reload: 0, shutdown: 0 });
    expect(idle.listenQueue === null || idle.listenQueue === 0).toBe(true);

    const pending = scgiRequest({ path: address }, { method: 'POST', uri: '/hold', body: 'x' });
    await waitFor(async () => JSON.parse((await statusGet(status, '/status')).body).totals.inProgress === 1);
    await new Promise((r) => setTimeout(r, 30));
    const busy = JSON.parse((await statusGet(status, '/status')).body);
    expect(busy.workers[0].state).toBe('busy');
    expect(busy.workers[0].oldestRequest).toMatchObject({ method: 'POST', uri: '/hold' });
    expect(busy.workers[0].oldestRequest.ageMs).toBeGreaterThanOrEqual(20);
    release();
    expect((await pending).status).toBe(200);
    const after = JSON.parse((await statusGet(status, '/status')).body);
    expect(after.totals.requests).toBe(6);
    expect(after.workers[0].state).toBe('idle');
  });

  it('GET /metrics: the Prometheus text format and OpenMetrics, as prometheus_client parses them', async () => {
    const { address, status } = await start(
      (headers, client) => {
        if (headers.get('REQUEST_URI') === '/boom') throw new Error('boom');
        client.writeHead(200, { 'Content-Type': 'text/plain' });
        client.end('ok\n');
      },
      { onError: () => {} },
    );
    for (let i = 0; i < 4; i++) await scgiRequest({ path: address }, { uri: '/' });
    expect((await scgiRequest({ path: address }, { uri: '/boom' })).status).toBe(500);

    const text = await statusGet(status, '/metrics');
    expect(text.status).toBe(200);
    expect(text.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const prom = parseMetrics(text.body, 'prometheus');
    expect(sampleValue(prom, 'scgi_requests', 'scgi_requests_total')).toBe(5);
    expect(sampleValue(prom, 'scgi_errors', 'scgi_errors_total')).toBe(1);
    expect(sampleValue(prom, 'scgi_rejected', 'scgi_rejected_total')).toBe(0);
    expect(sampleValue(prom, 'scgi_timeouts', 'scgi_timeouts_total')).toBe(0);
    expect(sampleValue(prom, 'scgi_requests_in_progress', 'scgi_requests_in_progress')).toBe(0);
    expect(sampleValue(prom, 'scgi_connections', 'scgi_connections')).toBeGreaterThanOrEqual(0);
    expect(sampleValue(prom, 'scgi_worker_replacements', 'scgi_worker_replacements_total', { reason: 'crash' })).toBe(0);
    expect(sampleValue(prom, 'scgi_worker_resident_memory_bytes', 'scgi_worker_resident_memory_bytes', { pid: String(process.pid) })).toBeGreaterThan(0);
    const hist = prom.get('scgi_request_duration_seconds')!;
    expect(hist.type).toBe('histogram');
    expect(sampleValue(prom, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_count')).toBe(5);
    expect(sampleValue(prom, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_bucket', { le: '+Inf' })).toBe(5);
    expect(sampleValue(prom, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_sum')).toBeGreaterThan(0);
    // listenQueue: known on Linux with the addon (sock_diag); no connection waits now.
    const q = sampleValue(prom, 'scgi_listen_queue', 'scgi_listen_queue');
    expect(q === undefined || q === 0).toBe(true);

    const om = await statusGet(status, '/metrics', { Accept: 'application/openmetrics-text; version=1.0.0,text/plain;q=0.5' });
    expect(om.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(om.body.endsWith('# EOF\n')).toBe(true);
    const open = parseMetrics(om.body, 'openmetrics');
    expect(open.get('scgi_requests')!.type).toBe('counter');
    expect(sampleValue(open, 'scgi_requests', 'scgi_requests_total')).toBe(5);
    expect(sampleValue(open, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_count')).toBe(5);
  });

  it('the unix socket is created mode 0600; other paths are 404, other methods 405', async () => {
    const { status } = await start((_h, client) => client.end('Status: 204 No Content\r\n\r\n'));
    expect(statSync(status).mode & 0o777).toBe(0o600);
    expect((await statusGet(status, '/nope')).status).toBe(404);
  });

  it('closes with the server and removes its socket', async () => {
    const { status } = await start((_h, client) => client.end('Status: 204 No Content\r\n\r\n'));
    await s.server.close();
    await expect(statusGet(status, '/status')).rejects.toThrow();
    expect(() => statSync(status)).toThrow();
  });
});

describe('statusAddress', () => {
  it('host:port (TCP, loopback for a bare port)', async () => {
    const dir = tempDir();
    const port = 20000 + (process.pid % 20000);
    const server = await serve((_h, c) => c.end('Status: 204 No Content\r\n\r\n'), {
      address: join(dir.path, 's.sock'),
      handleSignals: false,
      statusAddress: String(port),
    });
    try {
      const doc = JSON.parse((await statusGet(`127.0.0.1:${port}`, '/status')).body);
      expect(doc.workers[0].pid).toBe(process.pid);
    } finally {
      await server.close();
      dir.cleanup();
    }
  });

  it('a bad value is ERR_SCGI_INVALID_OPTION', async () => {
    await expect(serve(() => {}, { statusAddress: '' })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_OPTION' });
    await expect(serve(() => {}, { statusAddress: 5 as never })).rejects.toMatchObject({ code: 'ERR_SCGI_INVALID_OPTION' });
  });
});

describe('statusAddress in worker_threads', () => {
  it('the status socket is bound aside (a worker thread may not set the umask): mode 0600, it answers, close removes it', async () => {
    const dir = tempDir();
    const address = join(dir.path, 'app.sock');
    const status = join(dir.path, 'status.sock');
    const { worker, messages } = serveInWorkerThread(
      String.raw`(h, c) => c.end('Status: 204 No Content\r\n\r\n')`,
      `{ address: ${JSON.stringify(address)}, statusAddress: ${JSON.stringify(status)}, handleSignals: false }`,
      '{ listening: true }',
    );
    try {
      await waitFor(() => messages.length > 0, 10_000);
      expect(messages[0]).toEqual({ listening: true });
      expect(statSync(status).mode & 0o777).toBe(0o600);
      expect(readdirSync(dir.path).filter((f) => f.startsWith('.scgi-'))).toEqual([]);
      expect((await scgiRequest({ path: address }, { uri: '/' })).status).toBe(204);
      const doc = JSON.parse((await statusGet(status, '/status')).body);
      expect(doc.totals.requests).toBe(1);
      worker.postMessage('close');
      await waitFor(() => messages.length > 1, 10_000);
      expect(existsSync(status)).toBe(false);
    } finally {
      await worker.terminate();
      dir.cleanup();
    }
  });
});
