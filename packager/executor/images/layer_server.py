"""The weights layers served to `buildah pull` over loopback HTTP, so that no copy of them is
written before buildah stores them.

Why: `buildah pull oci:LAYOUT` (containers/image 5.23) copies every blob it reads into a
temporary file before it applies it to storage, and keeps those files until the pull ends. A
layout whose blobs are files on disk therefore costs two copies of the weights beside the image
(8 GiB extra at 4 GiB of weights). An OCI descriptor may name `urls` to fetch its blob from
(oci/layout/oci_src.go `getExternalBlob`; a plain GET, its size from Content-Length, its bytes
checked against the descriptor's digest by the copy): the layout written here holds the config
and manifest only, and each layer is produced from the weights context while buildah reads it.
The one copy left is buildah's own temporary file.

The descriptor's digest must be in the manifest before buildah reads a byte, so each layer is
hashed first (packager.executor.images.weights.write_layer without a sink: one read of the
weights, no write) and sent again when served, the files' bytes by sendfile(2) and not hashed
again (buildah checks each layer's digest); a file whose inode, size, mtime or ctime is not the
one hashed is refused and named.

Only this process and the buildah it starts know the address: the server listens on 127.0.0.1
only, and every path carries a random 128-bit token (the layout that names it is in a 0700
directory), so another local user cannot fetch the weights while the pull runs. The URLs stay
in the manifest buildah stores for that image, but are never pushed: a copy out of storage
describes each layer by what storage holds (containers/image storage_src.go
LayerInfosForCopy), without URLs.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from packager import layers
from packager.errors import BuildError, bounded
from packager.executor.images import weights
from packager.layers import WEIGHTS, LayerGroup

# What tells a file apart from the one hashed: inode, size, mtime and ctime in nanoseconds (as
# the input digest cache does; any write moves mtime and ctime, a replaced file has a new inode).
Identity = tuple[int, int, int, int]


def _identity(st: os.stat_result) -> Identity:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class ServedLayer:
    """One weights layer: what it holds, and its digest and size, known before it is served;
    `files`: the identity of each file it was hashed from."""

    group: LayerGroup
    digest: str
    size: int
    files: Mapping[str, Identity] = field(default_factory=dict)


def _changed(layer: ServedLayer) -> BuildError:
    # buildah refuses such a layer too ("Digest did not match"); this names the cause.
    return BuildError(f"the weights of model {bounded(layer.group.model)} changed while the "
                      "weights image was made",
                      fix="package again once nothing writes to the model directory")


def send_layer(sock: socket.socket, context: Path, layer: ServedLayer) -> None:
    """Send `layer`'s tar on `sock`: headers and padding from here, each file's bytes by
    sendfile(2) -- no copy through this process and no second hash (buildah checks the
    digest; a file whose identity is not the hashed one is refused here). The bytes are
    weights.write_layer's."""
    mtime = WEIGHTS.mtime
    for m in layer.group.members():
        sock.sendall(m.header(mtime))
        if m.is_dir:
            continue
        path = weights.source(context, m)
        with path.open("rb") as fh:
            if _identity(os.fstat(fh.fileno())) != layer.files.get(m.name):
                raise _changed(layer)
            if m.size and sock.sendfile(fh, 0, m.size) != m.size:
                raise _changed(layer)
        sock.sendall(b"\0" * layers.padding(m.size))
    sock.sendall(layers.END_OF_ARCHIVE)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A pull that reads several layers at once (containers/image copies layers in parallel)
    # opens one connection per layer.
    request_queue_size = 64

    def __init__(self, context: Path, layers: Mapping[str, ServedLayer], token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.layers = dict(layers)
        self.token = token
        self.failures: list[BuildError] = []
        self.lock = threading.Lock()

    def fail(self, err: BuildError) -> None:
        with self.lock:
            self.failures.append(err)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # http.server's name
        token, _, name = self.path.lstrip("/").partition("/")
        layer = self.server.layers.get(name) if secrets.compare_digest(
            token.encode(), self.server.token.encode()) else None
        if layer is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(layer.size))
        self.end_headers()
        try:
            send_layer(self.connection, self.server.context, layer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # buildah went away: its own error says why
        except BuildError as exc:
            self.server.fail(exc)
            self.close_connection = True
        except OSError as exc:  # a weights file gone or unreadable
            self.server.fail(BuildError(f"cannot read the weights of model "
                                        f"{bounded(layer.group.model)}: {exc}",
                                        fix="package again once nothing writes to the model "
                                        "directory"))
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return  # no access log on the packager's output


class LayerServer:
    """Serves `layers` (keyed by digest) from the weights `context` on 127.0.0.1 while the
    `with` block runs; `url(digest)` is what a descriptor's `urls` names."""

    def __init__(self, context: Path, layers: Mapping[str, ServedLayer]) -> None:
        self._server = _Server(context, layers, secrets.token_hex(16))
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="weights-layer-server", daemon=True)

    def url(self, digest: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{self._server.token}/{digest.removeprefix('sha256:')}"

    @property
    def failure(self) -> BuildError | None:
        """The first layer that could not be served as promised, if any."""
        with self._server.lock:
            return self._server.failures[0] if self._server.failures else None

    def __enter__(self) -> LayerServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def served_layers(context: Path, groups: list[LayerGroup], *,
                  workers: int = 2) -> list[ServedLayer]:
    """Each of `groups` with its digest and size, hashed from the weights context (no copy
    written), several layers at once: sha256 of one stream runs on one core."""
    from concurrent.futures import ThreadPoolExecutor

    def one(group: LayerGroup) -> ServedLayer:
        files = {m.name: _identity(weights.source(context, m).stat())
                 for m in group.members() if not m.is_dir}
        digest, size = weights.write_layer(None, context, group)
        if any(_identity(weights.source(context, m).stat()) != files[m.name]
               for m in group.members() if not m.is_dir):
            raise BuildError(f"the weights of model {bounded(group.model)} changed while they "
                             "were read", fix="package again once nothing writes to the model "
                             "directory")
        return ServedLayer(group, digest, size, files)

    if len(groups) <= 1 or workers <= 1:
        return [one(g) for g in groups]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="weights-hash") as pool:
        return list(pool.map(one, groups))
