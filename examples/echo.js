// Echo: answers with the CGI variables it got and the request body, streamed
// back as it arrives (no buffering).
//   npx scgi serve examples/echo.js
/** Tells `scgi serve` what the default export is (a plain function could be any kind). */
export const scgiType = 'raw';

/** @type {import('scgi').Handler} */
export default async function echo(headers, client) {
  client.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  for (const [name, value] of headers) client.write(`${name}=${value}\n`);
  client.write('\n');
  for await (const chunk of client) {
    if (!client.write(chunk)) await new Promise((resolve) => client.once('drain', resolve));
  }
  client.end();
}
