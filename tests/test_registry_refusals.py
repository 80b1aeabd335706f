"""A registry that refuses what the layers pusher sends: uncompressed layers, or OCI manifests.

Quay answers a manifest naming uncompressed layers with 400 `MANIFEST_INVALID` ("manifest
invalid", containers/image#1270); registries that take Docker manifests only answer an OCI one
with 415 or MANIFEST_INVALID. `FakeRegistry` is a real HTTP server speaking enough of the
distribution API for a push (HEAD, POST/PATCH/PUT uploads, manifest PUT) and answering so; the
push must fail with one message naming the registry and the way out, exit 5, no traceback,
nothing recorded -- and succeed with that way out.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.executor.images.distribution import OCI_LAYER, registry_answer

REFUSE_UNCOMPRESSED = "uncompressed"  # 400 MANIFEST_INVALID for an uncompressed layer (Quay)
REFUSE_OCI = "oci"  # 415 for any OCI manifest (a registry taking Docker manifests only)


class _Registry(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.refuse = REFUSE_UNCOMPRESSED
        self.blobs: dict[str, int] = {}  # digest -> size (the bytes are checked, not kept)
        self.uploads: dict[str, hashlib._Hash] = {}
        self.manifests: dict[str, bytes] = {}
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Registry
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        return

    def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _errors(self, status: int, code: str, message: str, detail: object) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]})
        self._answer(status, body.encode(), Content_Type="application/json")

    def _body(self) -> Iterator[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            left -= len(chunk)
            yield chunk

    def do_GET(self) -> None:  # http.server's name
        if self.path == "/v2/":
            self._answer(200, b"{}")
        else:
            self._errors(404, "NAME_UNKNOWN", "repository name not known", self.path)

    def do_HEAD(self) -> None:  # http.server's name
        digest = self.path.rsplit("/", 1)[-1]
        with self.server.lock:
            size = self.server.blobs.get(digest)
        if "/blobs/" in self.path and size is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Docker-Content-Digest", digest)
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self) -> None:  # http.server's name
        for _ in self._body():
            pass
        upload = uuid.uuid4().hex
        with self.server.lock:
            self.server.uploads[upload] = hashlib.sha256()
        repo = self.path.split("/blobs/")[0]
        self._answer(202, Location=f"{repo}/blobs/uploads/{upload}", Range="0-0")

    def do_PATCH(self) -> None:  # http.server's name
        upload = self.path.split("?")[0].rsplit("/", 1)[-1]
        sha = self.server.uploads[upload]
        for chunk in self._body():
            sha.update(chunk)
        self._answer(202, Location=self.path.split("?")[0])

    def do_PUT(self) -> None:  # http.server's name
        body = b"".join(self._body())
        path, _, query = self.path.partition("?")
        if "/manifests/" in path:
            doc = json.loads(body)
            media = self.headers.get("Content-Type", "")
            if self.server.refuse == REFUSE_OCI and "oci" in media:
                self._errors(415, "MANIFEST_INVALID", "manifest invalid",
                             f"unsupported manifest media type {media}")
                return
            raw = [d["digest"] for d in doc["layers"] if d["mediaType"] == OCI_LAYER]
            if self.server.refuse == REFUSE_UNCOMPRESSED and raw:
                self._errors(400, "MANIFEST_INVALID", "manifest invalid",
                             {"layer": raw[0], "mediaType": OCI_LAYER})
                return
            with self.server.lock:
                missing = [d["digest"] for d in [doc["config"], *doc["layers"]]
                           if d["digest"] not in self.server.blobs]
                if not missing:
                    self.server.manifests[path.rsplit("/", 1)[-1]] = body
            if missing:
                self._errors(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown", missing[0])
                return
            self._answer(201, Docker_Content_Digest="sha256:" + hashlib.sha256(body).hexdigest())
            return
        upload = path.rsplit("/", 1)[-1]
        digest = dict(p.split("=", 1) for p in query.split("&") if "=" in p)["digest"]
        digest = digest.replace("%3A", ":")
        with self.server.lock:
            sha = self.server.uploads.pop(upload)
        sha.update(body)
        if f"sha256:{sha.hexdigest()}" != digest:
            self._errors(400, "DIGEST_INVALID", "provided digest did not match", digest)
            return
        with self.server.lock:
            self.server.blobs[digest] = 0
        self._answer(201, Location=f"{path}", Docker_Content_Digest=digest)

    def do_DELETE(self) -> None:  # http.server's name
        self._answer(204)


@pytest.fixture
def fake_registry() -> Iterator[_Registry]:
    server = _Registry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_registry_answers_are_read_as_one_line() -> None:
    body = json.dumps({"errors": [{"code": "MANIFEST_INVALID", "message": "manifest invalid",
                                   "detail": {"mediaType": OCI_LAYER}}]}).encode()
    codes, line = registry_answer(400, body)
    assert codes == {"MANIFEST_INVALID"}
    assert line.startswith("HTTP 400 MANIFEST_INVALID: manifest invalid (") and OCI_LAYER in line
    assert registry_answer(415, b"Unsupported Media Type\n") == (set(),
                                                                 "HTTP 415 Unsupported Media Type")
    assert registry_answer(502, b"") == (set(), "HTTP 502 no details")
    codes, line = registry_answer(400, b'{"errors": [1, {"code": "DENIED"}]}')
    assert codes == {"DENIED"} and line == "HTTP 400 DENIED"


def _small_model(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.pbtxt").write_text('name: "refused"\nplatform: "tensorrt_plan"\n'
                                       "max_batch_size: 0\n")
    (root / "odahuflow.model.yaml").write_text("name: refused\nversion: 1\n")
    (root / "model.plan").write_bytes(os.urandom(2 << 20))
    return root


@pytest.mark.docker
def test_a_registry_refusing_uncompressed_layers_or_oci_manifests_is_one_clear_message(
        tmp_path: Path, client: object, images: list[str], fake_registry: _Registry,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["package", str(_small_model(tmp_path / "model")), "-o", str(out),
                 "--builder", "docker", "--tag", "refused:1", "--base-image", LOCAL_CPU_IMAGE,
                 "-q"]) == 0
    images += ["refused:1", _weights_tag(out)]
    result = (out / "result.json").read_bytes()
    host = f"127.0.0.1:{fake_registry.server_address[1]}"
    capsys.readouterr()

    # Quay's answer to uncompressed layers: one message, the registry and the option, exit 5
    code = main(["push", "-o", str(out), "--registry", f"{host}/a"])
    err = capsys.readouterr().err
    assert code == 5, err
    assert f"registry {host} refused the push" in err and "uncompressed layers" in err
    assert "MANIFEST_INVALID" in err and "--layer-compression gzip" in err
    assert "Traceback" not in err
    assert (out / "result.json").read_bytes() == result  # nothing recorded
    assert not fake_registry.manifests

    # the way out it names works: every layer gzipped (the blobs already there are not resent)
    assert main(["push", "-o", str(out), "--registry", f"{host}/a", "--layer-compression",
                 "gzip"]) == 0
    images.append(capsys.readouterr().out.strip().split("@")[0])
    manifest = json.loads(fake_registry.manifests["1"])
    assert manifest["layers"] and all(d["mediaType"].endswith("+gzip")
                                      for d in manifest["layers"])

    # a registry taking no OCI manifest at all: gzip does not help, the builder's push may
    fake_registry.refuse = REFUSE_OCI
    # (result.json names the pushed reference now: pushed there again)
    code = main(["push", "-o", str(out), "--layer-compression", "gzip"])
    err = capsys.readouterr().err
    assert code == 5, err
    assert f"registry {host} refused the push" in err and "OCI image manifest" in err
    assert "--pusher builder" in err and "--layer-compression" not in err
    assert "Traceback" not in err


def _weights_tag(out: Path) -> str:
    """The weights image the output's model image is built FROM (removed with the test's)."""
    return next(ln.split()[1] for ln in (out / "context/Dockerfile").read_text().splitlines()
                if ln.startswith("FROM ") and "triton-packager/weights:" in ln)
