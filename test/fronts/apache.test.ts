// Apache httpd 2.4 (mod_proxy_scgi) in front of scgi, from examples/apache/scgi.conf,
// over a unix socket, TCP 127.0.0.1 and TCP [::1].
import { frontMatrix } from './matrix.ts';

frontMatrix('apache', {
  dupHeader: ['one, two'],
  dupCookie: ['a=1, b=2'],
  reason404: 'Not Here',
  chunked: '411',
  headContentLength: ['9', undefined],
});
