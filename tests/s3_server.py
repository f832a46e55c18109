"""Run by the object-storage tests as a separate process: moto's S3 API on 127.0.0.1, on a
free port it prints as its first line, until killed.

One request at a time: moto checks a conditional PUT (`If-None-Match: *`, how Lance
commits a version on S3) and stores the object in two steps, so two threads could both
pass the check and one commit would be lost. Its own server (`moto_server`) runs a thread
per request; this one runs none. Werkzeug then answers HTTP/1.0 (one request per
connection), so no client holds the server on an idle connection.

    python tests/s3_server.py
"""

import sys

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


def main():
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler)
    print(server.server_address[1], flush=True)
    sys.stdout.close()  # the port was the only line: nothing fills the pipe after it
    server.serve_forever()


if __name__ == "__main__":
    main()
