/**
 * `scgi/fetch`: run a WHATWG fetch handler, `(request: Request) => Response`,
 * as Hono, itty-router and similar export, over SCGI.
 *
 * The Request's URL comes from the CGI variables (scheme, host, REQUEST_URI),
 * its body is a ReadableStream over the SCGI body (not buffered), and its
 * `signal` aborts when the front disconnects before the response is done.
 * Response bodies are streamed with backpressure; a body that is complete at
 * once (a string or bytes) goes out in one write with a Content-Length.
 */
import { httpHeaders, requestTarget } from '../cgi.ts';
import type { Handler, ScgiClient } from '../scgi-client.ts';
import { ScgiError } from '../errors.ts';
import type { ScgiHeaders } from '../headers.ts';

/** What a fetch handler may get as a second argument (Hono's `env`, `c.env`). */
export interface FetchContext {
  headers: ScgiHeaders;
  client: ScgiClient;
}

export type FetchHandler = (request: Request, context: FetchContext) => Response | Promise<Response>;

/** The body as a byte stream that pulls from the client (backpressure by pausing it). */
function bodyStream(client: ScgiClient): ReadableStream<Uint8Array> {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let done = false;
  const cleanup = () => {
    done = true;
    client.off('data', onData);
    client.off('end', onEnd);
    client.off('error', onError);
    client.off('close', onClose);
  };
  const onData = (chunk: Buffer) => {
    controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if ((controller.desiredSize ?? 0) <= 0) client.pause();
  };
  const onEnd = () => {
    cleanup();
    controller.close();
  };
  const onError = (err: Error) => {
    cleanup();
    controller.error(err);
  };
  const onClose = () => {
    if (done) return;
    cleanup();
    controller.error(new ScgiError('ERR_SCGI_BODY_TRUNCATED', 'the front closed the connection before the body was read'));
  };
  return new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        client.on('data', onData);
        client.pause();
        client.once('end', onEnd);
        client.once('error', onError);
        client.once('close', onClose);
      },
      pull() {
        client.resume();
      },
      cancel() {
        cleanup();
        // The connection discards what is left of the body once the response ends.
      },
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
}

/** Build the Request for an SCGI request. */
export function toRequest(headers: ScgiHeaders, client: ScgiClient, signal?: AbortSignal): Request {
  const target = requestTarget(headers);
  const mapped = httpHeaders(headers);
  const h = new Headers();
  const raw = mapped.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) h.append(raw[i]!, raw[i + 1]!);
  const hasBody = target.method !== 'GET' && target.method !== 'HEAD';
  const init: RequestInit & { duplex?: 'half' } = { method: target.method, headers: h, signal };
  if (hasBody) {
    init.body = bodyStream(client);
    init.duplex = 'half';
  } else if (headers.contentLength === 0) {
    client.resume();
  }
  return new Request(`${target.scheme}://${target.host}${target.url}`, init);
}

/** Write a Response to the client as a CGI response. */
export async function writeResponse(response: Response, client: ScgiClient, method: string): Promise<void> {
  const head: [string, string][] = [];
  let hasLength = false;
  response.headers.forEach((value, name) => {
    if (name === 'set-cookie') return;
    if (name === 'content-length') hasLength = true;
    head.push([name, value]);
  });
  for (const cookie of response.headers.getSetCookie()) head.push(['set-cookie', cookie]);
  const status = response.status;
  const reason = response.statusText || undefined;
  const body = response.body;
  if (body === null || method === 'HEAD') {
    if (body !== null) await body.cancel().catch(() => {});
    client.writeHead(status, reason, head);
    client.end();
    return;
  }
  const reader = body.getReader();
  const onClose = () => {
    reader.cancel().catch(() => {});
  };
  client.once('close', onClose);
  try {
    const first = await reader.read();
    if (first.done) {
      client.writeHead(status, reason, head);
      client.end();
      return;
    }
    // A body complete at once (string, bytes, a buffered Response): one write
    // with Content-Length. Otherwise stream from the first chunk on.
    const next = reader.read();
    const immediate = await Promise.race([next, new Promise<null>((r) => setImmediate(() => r(null)))]);
    if (immediate !== null && immediate.done) {
      if (!hasLength) head.push(['content-length', String(first.value.byteLength)]);
      client.writeHead(status, reason, head);
      client.end(first.value);
      return;
    }
    client.writeHead(status, reason, head);
    if (!client.write(first.value)) await drained(client);
    let chunk = immediate ?? (await next);
    while (!chunk.done) {
      if (client.destroyed) return;
      if (!client.write(chunk.value)) await drained(client);
      chunk = await reader.read();
    }
    client.end();
  } finally {
    client.off('close', onClose);
  }
}

function drained(client: ScgiClient): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      client.off('drain', done);
      client.off('close', done);
      resolve();
    };
    client.once('drain', done);
    client.once('close', done);
  });
}

/**
 * Wrap a fetch handler as an SCGI handler: `serve(fromFetch(app.fetch), options)`.
 * Accepts the handler function or an object with a `fetch` method (a Hono app).
 */
export function fromFetch(app: FetchHandler | { fetch: FetchHandler }): Handler {
  const handler: FetchHandler =
    typeof app === 'function' ? app : typeof app?.fetch === 'function' ? app.fetch.bind(app) : (null as never);
  if (handler === null) throw new TypeError('fromFetch: expected a fetch handler or an object with a fetch method');
  return async (headers, client) => {
    const ac = new AbortController();
    const onClose = () => {
      if (!client.writableFinished) ac.abort(new ScgiError('ERR_SCGI_BODY_TRUNCATED', 'the front closed the connection'));
    };
    client.once('close', onClose);
    const request = toRequest(headers, client, ac.signal);
    const response = await handler(request, { headers, client });
    if (!(response instanceof Response)) {
      throw new TypeError(`fetch handler returned ${response === null ? 'null' : typeof response}, not a Response`);
    }
    await writeResponse(response, client, request.method);
  };
}
