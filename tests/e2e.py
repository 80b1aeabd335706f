"""Shared helpers for the tests that use the real Docker engine."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from packager.analysis import Options
from packager.basechoice import LOCAL_CPU_IMAGE
from packager.executor.phases import Outcome, Workspace
from packager.executor.report import Reporter


class Recorder(Reporter):
    """A Reporter that keeps every line, so tests can read the build log."""

    def __init__(self) -> None:
        super().__init__("quiet")
        self.lines: list[str] = []

    def _emit(self, kind: str, text: str, **extra: object) -> None:
        self.lines.append(f"{kind}: {text}")


def package(model: Path, out: Path, *, builder: str = "auto",
            **opts: str) -> tuple[Outcome, Recorder]:
    rec = Recorder()
    options = Options(base_image=opts.pop("base_image", LOCAL_CPU_IMAGE), **opts)
    return Workspace(model, out, options, rec, builder=builder).run("package"), rec


def _archive(client: docker.DockerClient, image: str, path: str) -> tarfile.TarFile:
    """`path` inside the image as a tar, read from a created (never started) container."""
    container = client.containers.create(image, command=["true"])
    try:
        stream, _ = container.get_archive(path)
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    return tarfile.open(fileobj=io.BytesIO(data))


def image_files(client: docker.DockerClient, image: str, path: str) -> dict[str, tarfile.TarInfo]:
    with _archive(client, image, path) as tar:
        return {m.name: m for m in tar.getmembers()}


def image_file_bytes(client: docker.DockerClient, image: str, path: str) -> bytes:
    with _archive(client, image, path) as tar:
        fh = tar.extractfile(tar.getmembers()[0])
        assert fh is not None
        return fh.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    ca: Path | None = None  # the CA that signed its certificate (TLS registries)

    def __str__(self) -> str:
        return self.host


def make_ca(tmp: Path, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA of the test's own and a server certificate for `ip` signed by it (openssl):
    (ca.crt, server.crt, server.key)."""
    tmp.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = tmp / "ca.key", tmp / "ca.crt"
    key, csr, crt, ext = tmp / "server.key", tmp / "server.csr", tmp / "server.crt", tmp / "ext"
    ext.write_text(f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n")
    for cmd in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
         "-out", str(ca_crt), "-days", "2", "-subj", "/CN=triton-packager test CA"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
         str(csr), "-subj", f"/CN={ip}"],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return ca_crt, crt, key


@contextlib.contextmanager
def registry(tmp: Path, *, user: str | None = None, password: str | None = None,
             tls: bool = False, bind: str = "127.0.0.1") -> Iterator[Registry]:
    """A real registry (Debian's docker-registry) on a loopback port; with `user` and
    `password`, htpasswd authentication (bcrypt, apache2-utils' htpasswd); with `tls`, a
    certificate from a CA the test makes (Registry.ca)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = ("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
           f"{tmp / 'registry-data'}\nhttp:\n  addr: {bind}:{port}\n")
    ca = None
    if tls:
        ca, crt, key = make_ca(tmp / "certs", bind)
        cfg += f"  tls:\n    certificate: {crt}\n    key: {key}\n"
    if user is not None:
        assert password is not None and shutil.which("htpasswd"), "run .ci/docker-up"
        users = tmp / "htpasswd"
        subprocess.run(["htpasswd", "-Bbc", str(users), user, password], check=True,
                       capture_output=True, timeout=60)
        cfg += f"auth:\n  htpasswd:\n    realm: test\n    path: {users}\n"
    (tmp / "registry.yml").write_text(cfg)
    proc = subprocess.Popen(["docker-registry", "serve", str(tmp / "registry.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection((bind, port), 0.2):
                break
            assert proc.poll() is None, "docker-registry exited at start"
            time.sleep(0.1)
        yield Registry(f"{bind}:{port}", ca)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def remove_image(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.DockerException):
        client.images.remove(ref, force=True)


# Linux capabilities by bit number (capability.h), as `docker run --cap-drop` names them.
_CAPS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
         "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
         "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
         "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
         "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
         "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
         "PERFMON", "BPF", "CHECKPOINT_RESTORE")


def privileged_flags(image: str = "triton-packager:latest") -> tuple[str, ...]:
    """`--privileged`; or, where this machine's capability bounding set lacks some capability
    (docker inside a restricted container: runc fails with `unable to apply caps`), the same
    minus the missing ones: every other capability, no seccomp filter, /proc and /sys unmasked."""
    probe = subprocess.run(["docker", "run", "--rm", "--privileged", "--network", "none", image,
                            "true"], capture_output=True, text=True, timeout=120)
    if probe.returncode == 0:
        return ("--privileged",)
    assert "apply caps" in probe.stderr, probe.stderr
    m = re.search(r"^CapBnd:\s*([0-9a-f]+)$", Path("/proc/self/status").read_text(), re.M)
    assert m
    bounding = int(m.group(1), 16)
    missing = [name for bit, name in enumerate(_CAPS) if not bounding >> bit & 1]
    assert "SYS_ADMIN" not in missing, "buildah's overlay mounts need CAP_SYS_ADMIN"
    return ("--cap-add=ALL", *(f"--cap-drop={name}" for name in missing),
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--security-opt", "systempaths=unconfined")


def authfile(path: Path, host: str, user: str, password: str) -> Path:
    """A Docker-style auth file (what a kubernetes.io/dockerconfigjson Secret holds), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    os.chmod(path, 0o600)
    return path


def infer_add_sub(url: str, a: Any, b: Any, *, module: Any = None,
                  version: str = "") -> tuple[Any, Any]:
    """One request to the Python example's `add-sub` (OUTPUT0, OUTPUT1), through
    tritonclient.http or, as `module`, tritonclient.grpc (same API)."""
    if module is None:
        import tritonclient.http as module
    c = module.InferenceServerClient(url)
    ins = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    r = c.infer("add-sub", ins, model_version=version)
    return r.as_numpy("OUTPUT0"), r.as_numpy("OUTPUT1")


def manifest_digest(reg: Registry, repo: str, tag: str, user: str, password: str) -> str:
    """The digest the registry `reg` gives the manifest repo:tag (HEAD, with basic auth)."""
    req = urllib.request.Request(f"{'https' if reg.ca else 'http'}://{reg.host}/v2/{repo}/"
                                 f"manifests/{tag}", method="HEAD", headers={
        "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json"})
    ctx = ssl.create_default_context(cafile=str(reg.ca)) if reg.ca else None
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        return str(resp.headers["Docker-Content-Digest"])
