/**
 * A request's headers stay its own for as long as the handler keeps them,
 * on both transports: the parser's result array is shared by a server's
 * connections (net) or is a batch's records (native), so `headersFromParse`
 * must copy (net) or read records nothing writes again (native). A handler
 * that reads its headers only after other requests were parsed sees its own.
 */
import { describe, expect, it } from 'vitest';
import { request } from '../src/client/request.ts';
import { testServers, TRANSPORTS } from './helpers.ts';

describe.each(TRANSPORTS)('%s transport', (transport) => {
  const each = testServers({ transport });

  it('headers read late, after other requests were parsed, are still the request’s own', async () => {
    let held = 0;
    let release: () => void = () => {};
    const allHeld = new Promise<void>((resolve) => (release = resolve));
    const N = 6;
    const { address } = await each.start(async (headers, client) => {
      // Hold every request until all have been parsed, then read.
      if (++held === N) release();
      await allHeld;
      const pairs = [...headers].filter(([k]) => k.startsWith('HTTP_X_') || k === 'REQUEST_URI');
      client.end(`Status: 200 OK\r\n\r\n${JSON.stringify(pairs)}`);
    });
    const responses = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        request(address, {
          uri: `/r${i}${'x'.repeat(i * 7)}`,
          headers: { 'X-Index': String(i), [`X-Only-${i}`]: 'v'.repeat(i + 1) },
        }),
      ),
    );
    responses.forEach((res, i) => {
      expect(JSON.parse(res.body.toString())).toEqual([
        ['REQUEST_URI', `/r${i}${'x'.repeat(i * 7)}`],
        ['HTTP_X_INDEX', String(i)],
        [`HTTP_X_ONLY_${i}`, 'v'.repeat(i + 1)],
      ]);
    });
  });
});
