// The transport seam (docs/ARCHITECTURE.md "The transport seam"): a
// transport other than a net.Socket can enter the lifecycle with a header it
// parsed itself, and report what it refused to the server's one place for
// stats and 'clientError'.
import { describe, expect, it } from 'vitest';
import { ScgiError } from '../src/errors.ts';
import { normalizeOptions } from '../src/options.ts';
import { parse, outSize, Status } from '../src/parser/index.ts';
import type { Handler } from '../src/connection/scgi-client.ts';
import { InProcessServer } from '../src/server/serve.ts';
import type { Transport, TransportEvents, TransportSocket } from '../src/transport/types.ts';
import { encodeRequest } from '../src/client/request.ts';

/** A transport that records what the lifecycle asks of it. */
class RecordingTransport implements Transport {
  readonly socket: TransportSocket = { remoteAddress: undefined, destroy: () => this.destroy() };
  readonly calls: string[] = [];
  readonly written: Buffer[] = [];
  events: TransportEvents | null = null;
  #ended = false;
  #closed = false;
  get writable(): boolean {
    return !this.#ended && !this.#closed;
  }
  attach(events: TransportEvents): void {
    this.events = events;
  }
  pause(): void {
    this.calls.push('pause');
  }
  resume(): void {
    this.calls.push('resume');
  }
  write(data: string | Uint8Array, encoding?: BufferEncoding): boolean {
    this.written.push(typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : Buffer.from(data));
    return true;
  }
  end(data?: string | Uint8Array | null, encoding?: BufferEncoding): boolean {
    if (data != null) this.write(data, encoding);
    this.#ended = true;
    this.calls.push('end');
    return true;
  }
  cork(): void {}
  uncork(): boolean {
    return true;
  }
  reset(): void {
    this.calls.push('reset');
    this.destroy();
  }
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.calls.push('destroy');
    process.nextTick(() => this.events!.onClose());
  }
}

function server(handler: Handler): InProcessServer {
  return new InProcessServer(handler, normalizeOptions({ handleSignals: false }), null);
}

describe('the transport seam', () => {
  it('a transport that parsed the header itself enters at BODY with startRequest', async () => {
    const seen: { uri: string | undefined; body: string }[] = [];
    const s = server(async (headers, client) => {
      let body = '';
      for await (const c of client) body += c;
      seen.push({ uri: headers.get('REQUEST_URI'), body });
      client.end('Status: 200 OK\r\n\r\nok');
    });
    const bytes = encodeRequest({ uri: '/parsed', body: 'hello' });
    const out = new Uint32Array(outSize(32));
    expect(parse(bytes, out, 65536, 32, 0)).toBe(Status.Complete);
    const t = new RecordingTransport();
    const conn = s.accept(t);
    conn.startRequest(bytes, out, 0, false, Date.now());
    await new Promise<void>((r) => setImmediate(r));
    expect(seen).toEqual([{ uri: '/parsed', body: 'hello' }]);
    expect(Buffer.concat(t.written).toString()).toBe('Status: 200 OK\r\n\r\nok');
    expect(t.calls).toContain('end');
    expect(s.stats).toMatchObject({ connections: 1, requests: 1, rejected: 0 });
    t.events!.onFin();
    t.destroy();
    await new Promise<void>((r) => setImmediate(r));
    expect(s.connections.size).toBe(0);
  });

  it("a transport's own refusals are counted and emitted through server.record", () => {
    const s = server(() => {});
    const got: [ScgiError, TransportSocket | undefined][] = [];
    s.on('clientError', (err: ScgiError, socket: TransportSocket | undefined) => got.push([err, socket]));
    const socket: TransportSocket = { destroy: () => {} };
    s.record('rejected', new ScgiError('ERR_SCGI_BAD_NETSTRING', 'bad'), socket);
    s.record('timeouts', new ScgiError('ERR_SCGI_HEADER_TIMEOUT', 'slow'), socket);
    expect(s.stats).toMatchObject({ rejected: 1, timeouts: 1 });
    expect(got.map(([e, so]) => [e.code, so === socket])).toEqual([
      ['ERR_SCGI_BAD_NETSTRING', true],
      ['ERR_SCGI_HEADER_TIMEOUT', true],
    ]);
  });
});
