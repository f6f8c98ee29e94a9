// The demo app: an SCGI handler. Run it with the CLI:
//   npx scgi serve examples/hello.js --http 127.0.0.1:8080
// or from this repository: npm run demo
import { parserInfo } from 'scgi';

/** Tells `scgi serve` what the default export is (a plain function could be any kind). */
export const scgiType = 'raw';

/** @type {import('scgi').Handler} */
export default async function hello(headers, client) {
  let body = 0;
  for await (const chunk of client) body += chunk.length;
  client.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  client.end(
    `Hello from scgi!\n` +
      `${headers.get('REQUEST_METHOD') ?? 'GET'} ${headers.get('REQUEST_URI') ?? '/'}` +
      ` (${body} body bytes, parser: ${parserInfo.backend})\n`,
  );
}
