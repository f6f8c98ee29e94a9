// stream.finished(client) after a complete response (issue 21 item 5): success
// whether or not the handler read the body, as node:http's finished(req) and
// finished(res) report for a request whose body the listener ignored; an
// error only when the response did not complete.
import { describe, expect, it } from 'vitest';
import { finished } from 'node:stream';
import type { Handler, ScgiClient } from '../src/index.ts';
import { scgiRequest, testServers, TRANSPORTS, waitFor } from './helpers.ts';

/** `handler` answers; `finished(client)`'s outcome: 'ok' or the error's code. */
function watched(answer: (client: ScgiClient) => void | Promise<void>, when: 'before' | 'after' = 'before'): { handler: Handler; outcome: string[] } {
  const outcome: string[] = [];
  const watch = (client: ScgiClient) => finished(client, (err) => outcome.push(err ? ((err as NodeJS.ErrnoException).code ?? err.message) : 'ok'));
  const handler: Handler = async (_headers, client) => {
    if (when === 'before') watch(client);
    await answer(client);
    if (when === 'after') watch(client);
  };
  return { handler, outcome };
}

const ANSWERS: [string, (client: ScgiClient) => void | Promise<void>][] = [
  ['writeHead + end(body)', (c) => void c.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok')],
  ['a raw CGI response in end()', (c) => void c.end('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok')],
  [
    'write then end',
    (c) => {
      c.writeHead(200);
      c.write('o');
      c.end('k');
    },
  ],
];

describe.each(TRANSPORTS)('finished(client) after a complete response (%s transport)', (transport) => {
  const srv = testServers({ transport });
  for (const [name, answer] of ANSWERS) {
    for (const [request, body] of [
      ['a GET without a body', undefined],
      ['a POST whose body the handler does not read', 'x'.repeat(1000)],
      ['a POST whose 200 kB body the handler does not read', 'y'.repeat(200_000)],
    ] as const) {
      for (const when of ['before', 'after'] as const) {
        it(`${name}, ${request}, finished() called ${when} answering: success`, async () => {
          const { handler, outcome } = watched(answer, when);
          const { address } = await srv.start(handler);
          const r = await scgiRequest({ path: address }, { method: body === undefined ? 'GET' : 'POST', body });
          expect(r.status).toBe(200);
          expect(r.body.toString()).toBe('ok');
          await waitFor(() => outcome.length > 0, 3000).catch(() => {});
          expect(outcome).toEqual(['ok']);
        });
      }
    }
  }

  it('the body read, then answered: success (as before)', async () => {
    const { handler, outcome } = watched(async (c) => {
      for await (const _ of c);
      c.writeHead(200).end('ok');
    });
    const { address } = await srv.start(handler);
    await scgiRequest({ path: address }, { method: 'POST', body: 'abc' });
    await waitFor(() => outcome.length > 0, 3000).catch(() => {});
    expect(outcome).toEqual(['ok']);
  });

  it('the handler destroys the client before answering: premature close, not success', async () => {
    const { handler, outcome } = watched((c) => {
      c.writeHead(200);
      c.write('partial');
      c.destroy();
    });
    const { address } = await srv.start(handler);
    await scgiRequest({ path: address }, {});
    await waitFor(() => outcome.length > 0, 3000).catch(() => {});
    expect(outcome).toEqual(['ERR_STREAM_PREMATURE_CLOSE']);
  });
});
