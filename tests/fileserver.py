"""Local HTTP(S) servers on 127.0.0.1 for the download tests (setup, its CA, the Tekton run)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import BaseServer
from typing import Any

HandlerFactory = Callable[[Any, Any, BaseServer], http.server.BaseHTTPRequestHandler]


@contextlib.contextmanager
def serving(handler: HandlerFactory, *, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """The base URL of a server answering with `handler`; HTTPS with `tls` (certificate, key).
    Stopped and its socket closed when the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    # shutdown() waits for the loop to poll once: a short interval keeps every test's end quick
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serve_directory(root: Path, *, tls: tuple[Path, Path] | None = None
                    ) -> contextlib.AbstractContextManager[str]:
    """The base URL of a server of the files under `root`."""
    return serving(functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root)),
                   tls=tls)
