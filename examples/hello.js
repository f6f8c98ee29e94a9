// The demo: an SCGI app on the default socket (/tmp/<uid>/scgi), or on
// SCGI_ADDRESS if set. Run it with `npm run demo`.
import { serve, defaultAddress, formatAddress, parserInfo } from 'scgi';

const server = await serve(
  async (headers, client) => {
    let body = 0;
    for await (const chunk of client) body += chunk.length;
    client.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    client.end(
      `Hello from scgi!\n` +
        `${headers.get('REQUEST_METHOD') ?? 'GET'} ${headers.get('REQUEST_URI') ?? '/'}` +
        ` (${body} body bytes, parser: ${parserInfo.backend})\n`,
    );
  },
  { address: process.env.SCGI_ADDRESS || undefined },
);

const where = server.address();
const path = typeof where === 'string' ? where : null;
console.log(`scgi demo listening on ${formatAddress(where)}`);
console.log(`
Put nginx in front of it (inside a server { } block):

    location / {
        include scgi_params;
        scgi_pass ${path ? `unix:${path}` : formatAddress(where)};
    }

Try it without nginx, from another terminal:

    node examples/request.js ${path ?? formatAddress(where)} /hello

Stop with Ctrl-C (the socket file is removed).`);
if (path && path === defaultAddress()) {
  console.log(`(nginx's worker user needs write access to ${path}: see socketGroup in README)`);
}
