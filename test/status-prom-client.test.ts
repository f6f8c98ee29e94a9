// registerMetrics(registry, server): the status metrics in a prom-client
// Registry of the app's own (prom-client is an optional peer dependency;
// here a dev dependency), read by prometheus_client's parsers.
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerMetrics } from '../src/index.ts';
import { scgiRequest, testServers, TRANSPORTS } from './helpers.ts';
import { parseMetrics, sampleValue } from './status-metrics.ts';

describe.each(TRANSPORTS)('registerMetrics (%s)', (transport) => {
  const s = testServers({ transport });

  it("a server with no monitoring option: its requests from then on, next to the app's own metrics", async () => {
    const { address } = await s.start((_h, client) => client.end('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok'));
    const registry = new Registry();
    const own = new Counter({ name: 'app_things_total', help: 'Things.', registers: [registry] });
    own.inc(2);
    registerMetrics(registry, s.server);
    for (let i = 0; i < 3; i++) expect((await scgiRequest({ path: address }, { uri: '/' })).status).toBe(200);
    const text = parseMetrics(await registry.metrics(), 'prometheus');
    expect(sampleValue(text, 'app_things', 'app_things_total')).toBe(2);
    expect(sampleValue(text, 'scgi_requests', 'scgi_requests_total')).toBe(3);
    expect(sampleValue(text, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_count')).toBe(3);
    expect(sampleValue(text, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_bucket', { le: '+Inf' })).toBe(3);
    expect(sampleValue(text, 'scgi_worker_resident_memory_bytes', 'scgi_worker_resident_memory_bytes', { pid: String(process.pid) })).toBeGreaterThan(0);
    expect(sampleValue(text, 'scgi_worker_replacements', 'scgi_worker_replacements_total', { reason: 'reload' })).toBe(0);

    const om = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
    om.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    registerMetrics(om, s.server);
    const open = parseMetrics(await om.metrics(), 'openmetrics');
    expect(sampleValue(open, 'scgi_requests', 'scgi_requests_total')).toBe(3);
    expect(sampleValue(open, 'scgi_request_duration_seconds', 'scgi_request_duration_seconds_count')).toBe(3);
  });

  it('something that is not a registry, or a server serve() did not make: ERR_SCGI_INVALID_OPTION', async () => {
    await s.start((_h, client) => client.end('Status: 204 No Content\r\n\r\n'));
    expect(() => registerMetrics({} as never, s.server)).toThrow(expect.objectContaining({ code: 'ERR_SCGI_INVALID_OPTION' }));
    expect(() => registerMetrics(new Registry(), {} as never)).toThrow(expect.objectContaining({ code: 'ERR_SCGI_INVALID_OPTION' }));
  });
});
