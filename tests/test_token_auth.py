"""Bearer-token authentication of the layers pusher against a real token flow: Debian's
docker-registry with `auth: token:` -- it answers 401 with a `Bearer realm=...,service=...,
scope=...` challenge and accepts only an RS256 JWT whose `x5c` certificate chains to its
`rootcertbundle`, issued by its issuer for its service, granting the repository actions asked
-- and a token server of the test's own (http.server; the JWT signed by openssl), which checks
the user's Basic credentials as a real one (Harbor, the cloud registries) does.

What it shows: a push whose credentials come from the environment gets a token for
`repository:NAME:pull,push`; a push to a second repository mounts the weights from the first,
with a token that also grants `pull` on that one (the scope is asked again), sending no byte
of any layer; a wrong password
is exit 5 without the password in the output.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from e2e import free_port

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main

pytestmark = pytest.mark.docker

SERVICE = "triton-test-registry"
ISSUER = "triton-test-token-issuer"
USER, PASSWORD = "pusher", "s3cret-Token-Pass"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, key: Path, cert_der: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.key = key
        self.cert_der = cert_der
        self.scopes: list[list[str]] = []  # the scopes of each token granted

    def sign(self, claims: dict[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.cert_der).decode("ascii")]}
        signing_input = f"{_b64url(json.dumps(header).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), capture_output=True, check=True,
                             timeout=30).stdout
        return f"{signing_input}.{_b64url(sig)}"


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenServer

    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:  # http.server's name
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected or query.get("service") != [SERVICE]:
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        scopes = query.get("scope", [])
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        self.server.scopes.append(scopes)
        now = int(time.time())
        token = self.server.sign({"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300,
                                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                                  "access": access})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def _token_registry(tmp: Path) -> Iterator[tuple[str, _TokenServer]]:
    """docker-registry on 127.0.0.1 trusting the token server's certificate; (host, server)."""
    tmp.mkdir(parents=True)
    key, cert = tmp / "token.key", tmp / "token.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=token issuer"],
                   check=True, capture_output=True, timeout=120)
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"],
                         check=True, capture_output=True, timeout=60).stdout
    tokens = _TokenServer(key, der)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    port = free_port()
    (tmp / "registry.yml").write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
        f"{tmp / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  token:\n"
        f"    realm: http://127.0.0.1:{tokens.server_address[1]}/token\n"
        f"    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {cert}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(tmp / "registry.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert proc.poll() is None, "docker-registry exited at start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}", tokens
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        tokens.shutdown()
        tokens.server_close()


def _package(root: Path, out: Path, tag: str) -> None:
    model = root / "model"
    if not model.exists():
        model.mkdir(parents=True)
        (model / "config.pbtxt").write_text('name: "tok"\nplatform: "tensorrt_plan"\n'
                                            "max_batch_size: 0\n")
        (model / "odahuflow.model.yaml").write_text("name: tok\nversion: 1\n")
        (model / "model.plan").write_bytes(os.urandom(3 << 20))
    assert main(["package", str(model), "-o", str(out), "--builder", "docker", "--tag", tag,
                 "--base-image", LOCAL_CPU_IMAGE, "-q"]) == 0


def test_layers_push_gets_bearer_tokens_from_a_real_token_flow(
        tmp_path: Path, client: object, images: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _package(tmp_path, tmp_path / "out-a", "tok-a:1")
    _package(tmp_path, tmp_path / "out-b", "tok-b:1")
    images += ["tok-a:1", "tok-b:1", _weights_tag(tmp_path / "out-a")]
    with _token_registry(tmp_path / "reg") as (host, tokens):
        monkeypatch.setenv("TRITON_PACKAGER_REGISTRY_USERNAME", USER)
        monkeypatch.setenv("TRITON_PACKAGER_REGISTRY_PASSWORD", PASSWORD + "-wrong")
        capsys.readouterr()
        code = main(["push", "-o", str(tmp_path / "out-a"), "--registry", f"{host}/a"])
        err = capsys.readouterr().err
        assert code == 5, err
        assert f"registry {host} gave no token" in err and "Traceback" not in err
        assert PASSWORD not in err and not tokens.scopes

        monkeypatch.setenv("TRITON_PACKAGER_REGISTRY_PASSWORD", PASSWORD)
        assert main(["push", "-o", str(tmp_path / "out-a"), "--registry", f"{host}/a"]) == 0
        images.append(capsys.readouterr().out.strip().split("@")[0])
        assert ["repository:a/tok-a:pull,push"] in tokens.scopes

        # the same weights to another repository: mounted from the first, with a token that
        # grants pull there too; nothing of the weights is uploaded again
        assert main(["push", "-o", str(tmp_path / "out-b"), "--registry", f"{host}/b"]) == 0
        captured = capsys.readouterr()
        images.append(captured.out.strip().split("@")[0])
        assert ["repository:b/tok-b:pull,push", "repository:a/tok-a:pull"] in tokens.scopes
        assert "push: 0 bytes of layers sent" in captured.err, captured.err


def _weights_tag(out: Path) -> str:
    """The weights image the output's model image is built FROM (removed with the test's)."""
    return next(ln.split()[1] for ln in (out / "context/Dockerfile").read_text().splitlines()
                if ln.startswith("FROM ") and "triton-packager/weights:" in ln)
