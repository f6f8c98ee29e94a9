// lighttpd 1.4 (mod_scgi) in front of scgi, from examples/lighttpd/scgi.conf,
// over a unix socket, TCP 127.0.0.1 and TCP [::1].
import { frontMatrix } from './matrix.ts';

frontMatrix('lighttpd', {
  dupHeader: ['one, two'],
  dupCookie: ['a=1; b=2'],
  reason404: 'Not Found',
  chunked: 'buffered',
  headContentLength: ['9'],
});
