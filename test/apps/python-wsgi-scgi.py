# A WSGI application behind the reference SCGI server (PyPI scgi==2.2), wrapped
# in Python's own PEP 3333 checker (wsgiref.validate): the environ must carry
# REQUEST_METHOD, SERVER_NAME, SERVER_PORT and SCRIPT_NAME or PATH_INFO, as a
# WSGI server builds it from the CGI variables an SCGI peer sends. Answers
# "route=PATH_INFO server=SERVER_NAME:SERVER_PORT query=QUERY_STRING"; a
# failed check answers 500 with the assertion.
# Usage: python3 python-wsgi-scgi.py PORT
import io
import sys
from wsgiref.handlers import BaseCGIHandler
from wsgiref.validate import validator
from scgi.scgi_server import SCGIServer
from scgi.util import SCGIHandler


def app(environ, start_response):
    body = ('route=%s server=%s:%s query=%s' % (
        environ['PATH_INFO'], environ['SERVER_NAME'], environ['SERVER_PORT'], environ.get('QUERY_STRING', ''))).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


class Wsgi(SCGIHandler):
    def produce(self, env, bodysize, input, output):
        body = io.BytesIO(input.read(bodysize))
        out = io.BytesIO()
        errors = io.StringIO()
        try:
            handler = BaseCGIHandler(body, out, errors, dict(env), multithread=False, multiprocess=True)
            handler.origin_server = False  # CGI style: a Status: line, not HTTP/1.x
            handler.run(validator(app))
        except Exception as e:  # noqa
            errors.write(repr(e))
        data = out.getvalue()
        if errors.getvalue():
            msg = errors.getvalue().encode()
            data = b'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n' + msg
        output.write(data)


if __name__ == '__main__':
    server = SCGIServer(handler_class=Wsgi, host='127.0.0.1', port=int(sys.argv[1]), max_children=2)
    sys.stdout.write('ready\n')
    sys.stdout.flush()
    server.serve()
