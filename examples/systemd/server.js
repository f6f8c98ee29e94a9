// The entry point scgi-app.service runs: serves the app's SCGI handler
// (the default export of ./app.js, or of $SCGI_APP) on the socket systemd
// passes when socket-activated (scgi-app.socket), else on
// /run/scgi-app/app.sock, group www-data, mode 0660.
// (A Node listener or fetch handler: wrap it with scgi/http or scgi/fetch,
// or use the CLI, `scgi serve app.js --address ... --socket-group www-data`.)
import { serve } from 'scgi';

const { default: handler } = await import(process.env.SCGI_APP ?? new URL('./app.js', import.meta.url).href);

const server = await serve(
  handler,
  process.env.LISTEN_FDS
    ? { socket: 'systemd' }
    : { address: process.env.SCGI_ADDRESS ?? '/run/scgi-app/app.sock', socketGroup: process.env.SCGI_SOCKET_GROUP ?? 'www-data' },
);
// A socket systemd passes has no address Node can tell (a unix socket's path is
// the ListenStream= of scgi-app.socket).
const where = server.address();
console.log(
  where !== null
    ? `scgi: listening on ${typeof where === 'string' ? where : `${where.address}:${where.port}`}`
    : 'scgi: listening on the socket passed by systemd (fd 3; its path is the ListenStream= of scgi-app.socket)',
);
