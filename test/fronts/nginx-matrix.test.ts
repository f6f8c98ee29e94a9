// nginx (ngx_http_scgi_module) in front of scgi, from examples/nginx/scgi-location.conf,
// over a unix socket, TCP 127.0.0.1 and TCP [::1]. (nginx.test.ts has more
// nginx-only cases.)
import { frontMatrix } from './matrix.ts';

frontMatrix('nginx', {
  dupHeader: ['one', 'two'],
  dupCookie: ['a=1', 'b=2'],
  reason404: 'Not Here',
  chunked: 'buffered',
  headContentLength: ['9'],
});
