# The reference SCGI server (Neil Schemenauer's `scgi` package, PyPI scgi==2.2)
# as a peer for scgi/client: echoes the CGI variables and the body it read.
# Usage: python3 python-scgi-server.py PORT
import sys
from scgi.scgi_server import SCGIServer
from scgi.util import SCGIHandler


class Echo(SCGIHandler):
    def produce(self, env, bodysize, input, output):
        body = input.read(bodysize)
        lines = ''.join('%s=%s\n' % (k, env[k]) for k in sorted(env))
        payload = lines.encode('latin-1') + b'\n' + body
        output.write(b'Status: 201 Created\r\nContent-Type: text/plain\r\nX-Server: python-scgi\r\n')
        output.write(b'Content-Length: %d\r\n\r\n' % len(payload))
        output.write(payload)


if __name__ == '__main__':
    server = SCGIServer(handler_class=Echo, host='127.0.0.1', port=int(sys.argv[1]), max_children=2)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    server.serve()
