"""buildah as a builder: no daemon, so it works in a cluster step without a Docker socket.

`BuildahBuilder` (the `Builder` protocol) is at the end; the functions above it are the buildah
calls it makes: builds, images in storage, pulls (from registries, the local Docker engine and
image files), imports of a root filesystem, image files written, pushes. Every buildah call is a
child process with a deadline in its own process group (executor/process.py). Choices that
differ from buildah's defaults, and why:

- `--isolation chroot`: RUN steps need no runc and no user namespaces, so it works inside an
  unprivileged-enough container (Tekton's buildah Task uses the same).
- `--layers`: keep each step's layer in storage, so the next build of the same context is served
  from the cache, as with the Docker engine.
- `--pull=never`: every base is made present first (`ensure_image`: buildah's storage, then the
  local Docker engine, then a registry), so the build itself never reaches the network for images.
- `--format docker`: the OCI image format has no HEALTHCHECK, and buildah would drop the
  generated Dockerfile's one (with a warning).
- build argument values go through the child's environment (`--build-arg NAME` reads
  `$NAME`), never its command line, where any local user could read a proxy password in `ps`.
- `--force-rm`: a failed build removes its working containers too (the Docker engine's forcerm).
- `--http-proxy=false`: buildah would otherwise hand the packager's own *_PROXY variables to
  every RUN step; as with the Docker engine, only the proxies given as build arguments count.

Storage (driver, root, runroot) comes from a `Storage` value or from the environment variables
TRITON_PACKAGER_BUILDAH_DRIVER / _ROOT / _RUNROOT; unset, buildah's own defaults apply
(/etc/containers/storage.conf, STORAGE_DRIVER). `vfs` works everywhere; `overlay` needs a kernel
that allows overlay mounts where buildah runs.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager import layers
from packager.dockerfile import base_images
from packager.errors import (
    BuildError,
    EnvironmentFault,
    InputError,
    PushError,
    bounded,
    redact,
)
from packager.executor.images import layer_server, weights
from packager.executor.images.builder import (
    Builder,
    Credentials,
    ExportedLayer,
    ImageInfo,
    Tls,
    registry_host,
)
from packager.executor.process import Timeout, child, kill_group, run
from packager.executor.report import Reporter
from packager.imageref import (
    ARCHIVE_TRANSPORTS,
    DAEMON_TRANSPORT,
    REGISTRY_TRANSPORT,
    STORAGE_TRANSPORT,
    archive_path,
    check_archive_output,
    split_transport,
)

LOG_TAIL = 15
BUILD_TIMEOUT = 2 * 3600.0
QUERY_TIMEOUT = 120.0  # inspect, tag, version: local metadata only
TRANSFER_TIMEOUT = 3600.0  # pull, push, archive: gigabytes of layers

ENV_DRIVER = "TRITON_PACKAGER_BUILDAH_DRIVER"
ENV_ROOT = "TRITON_PACKAGER_BUILDAH_ROOT"
ENV_RUNROOT = "TRITON_PACKAGER_BUILDAH_RUNROOT"
# "false": pull base images without checking the registry's certificate (test registries; the
# Tekton build Task sets it from its tlsVerify param, as push's --tls-verify).
ENV_TLS_VERIFY = "TRITON_PACKAGER_BUILDAH_TLS_VERIFY"

INSTALL_FIX = ("install buildah (Debian/Ubuntu: `apt-get install -y buildah`; Fedora/RHEL: "
               "`dnf install -y buildah`), or build with the Docker engine instead")

_DRIVER_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_BUILD_ARG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_STEP_ERROR_RE = re.compile(r"(error building at STEP|^Error:|level=error)", re.I)


@dataclass(frozen=True)
class Storage:
    """Where buildah keeps images and layers. None: buildah's own default."""

    driver: str | None = None  # "overlay", "vfs", ...
    root: Path | None = None
    runroot: Path | None = None

    def __post_init__(self) -> None:
        if self.driver is not None and not _DRIVER_RE.fullmatch(self.driver):
            raise InputError(f"buildah storage driver {bounded(self.driver)} is not a driver name",
                             fix="use overlay or vfs")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Storage:
        env = os.environ if environ is None else environ
        root, runroot = env.get(ENV_ROOT), env.get(ENV_RUNROOT)
        return cls(driver=env.get(ENV_DRIVER) or None,
                   root=Path(root) if root else None,
                   runroot=Path(runroot) if runroot else None)

    def flags(self) -> list[str]:
        """buildah's global options selecting this storage (before the subcommand)."""
        out: list[str] = []
        if self.driver:
            out += ["--storage-driver", self.driver]
        if self.root is not None:
            out += ["--root", str(self.root)]
        if self.runroot is not None:
            out += ["--runroot", str(self.runroot)]
        return out


def _binary() -> str:
    found = shutil.which("buildah")
    if found is None:
        raise BuildError("buildah is not installed (no `buildah` on PATH)", fix=INSTALL_FIX)
    return found


def require() -> None:
    """buildah is installed and answers; BuildError (exit 3) naming how to install it if not."""
    proc = _buildah(["--version"], Storage(), timeout=QUERY_TIMEOUT)
    if proc.returncode != 0:
        raise BuildError(f"buildah does not run: {_first_error(proc.stderr)}", fix=INSTALL_FIX)


def available() -> bool:
    """buildah is installed and runs (for `--builder auto`)."""
    found = shutil.which("buildah")
    if found is None:
        return False
    try:
        return run([found, "--version"], timeout=30).returncode == 0
    except (Timeout, OSError):
        return False


def _buildah(args: Sequence[str], storage: Storage | None, *, timeout: float,
             env: Mapping[str, str] | None = None,
             writes_to: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run buildah with `args`; a failure because a filesystem filled is an EnvironmentFault
    (`writes_to`: a directory besides its storage and $TMPDIR that this call writes to)."""
    storage = storage or Storage.from_env()
    cmd = [_binary(), *storage.flags(), *args]
    try:
        proc = run(cmd, timeout=timeout, stdin=subprocess.DEVNULL,
                   env=dict(env) if env is not None else None)
    except Timeout as exc:
        raise BuildError(f"`buildah {args[0]}` passed its deadline of {timeout:.0f}s",
                         log_tail=_tail(exc.output),
                         fix="check that buildah's storage is not locked by a stuck process") from None
    except OSError as exc:
        raise BuildError(f"cannot run buildah: {exc}", fix=INSTALL_FIX) from None
    if proc.returncode != 0:
        _check_space(proc.stderr, f"`buildah {args[0]}`", storage, writes_to)
    return proc


# containers/storage and containers/image pass the kernel's words on: `write PATH: no space left
# on device` (ENOSPC), `disk quota exceeded` (EDQUOT).
_NO_SPACE_RE = re.compile(r"(?:(?P<path>/[^\s\"':]*)\"?: )?(?P<why>no space left on device|"
                          r"disk quota exceeded)", re.I)


def _check_space(output: str, what: str, storage: Storage, writes_to: Path | None = None,
                 ) -> None:
    """A buildah that failed because a filesystem filled is the machine's fault, not the
    build's: EnvironmentFault (exit 3) naming where it wrote and how to move that. buildah
    itself removes what it was writing (its temporary files, the layer)."""
    m = _NO_SPACE_RE.search(output)
    if m is None:
        return
    root = storage.root or Path("/var/lib/containers/storage")
    tmp = Path(os.environ.get("TMPDIR") or "/var/tmp")
    known = [root, storage.runroot or Path("/run/containers/storage"), tmp,
             *([writes_to] if writes_to is not None else [])]
    path = m.group("path") or ""
    if path and any(Path(path).is_relative_to(k) for k in known):
        where = f" at {bounded(path, 200, quote=False)}"
    else:
        # a path inside the layer being unpacked into storage (`write /models/...`)
        where = f" in buildah's storage ({root})"
    raise EnvironmentFault(
        f"{what} failed: {m.group('why').lower()}{where}",
        fix=f"free space where buildah writes: its storage ({root}; ${ENV_ROOT} moves it) and its "
        f"temporary files ({tmp}; $TMPDIR moves them). Making the weights image needs the "
        "weights' size free in each while it runs",
        log_tail=_tail(output, 5))


def _tail(text: str, n: int = LOG_TAIL) -> tuple[str, ...]:
    return tuple(redact(ln.rstrip()) for ln in text.splitlines() if ln.strip())[-n:]


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if _STEP_ERROR_RE.search(ln):
            return redact(ln)[:300]
    return redact(lines[-1])[:300] if lines else "no output"


# --- images in storage -------------------------------------------------------------------------

def _inspect(reference: str, storage: Storage | None) -> dict[str, Any] | None:
    proc = _buildah(["inspect", "--type", "image", "--", reference], storage, timeout=QUERY_TIMEOUT)
    if proc.returncode != 0:
        return None
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _sha(image: str) -> str:
    return image if image.startswith("sha256:") else f"sha256:{image}"


def image_id(reference: str, *, storage: Storage | None = None) -> str | None:
    """`sha256:...` of `reference` in buildah's storage (None when absent). The ID is the digest
    of the image's config, so an image copied from the Docker engine keeps the engine's ID."""
    doc = _inspect(reference, storage)
    if doc is None or not doc.get("FromImageID"):
        return None
    return _sha(str(doc["FromImageID"]))


def image_exists(reference: str, image_id_: str, *, storage: Storage | None = None) -> bool:
    try:
        return image_id(reference, storage=storage) == _sha(image_id_)
    except BuildError:
        return False


def image_labels(reference: str, *, storage: Storage | None = None) -> dict[str, str] | None:
    doc = _inspect(reference, storage)
    if doc is None:
        return None
    for key in ("OCIv1", "Docker"):
        labels = ((doc.get(key) or {}).get("config") or {}).get("Labels")
        if isinstance(labels, dict):
            return {str(k): str(v) for k, v in labels.items()}
    return {}


def image_platform(reference: str, *, storage: Storage | None = None) -> str | None:
    """`os/architecture[/variant]` of `reference` in storage (None when absent)."""
    doc = _inspect(reference, storage)
    if doc is None:
        return None
    cfg = doc.get("OCIv1") or {}
    parts = [str(cfg.get("os") or ""), str(cfg.get("architecture") or ""),
             str(cfg.get("variant") or "")]
    return "/".join(p for p in parts if p)


def _check_platform(reference: str, platform: str, storage: Storage | None) -> None:
    """buildah starts FROM only an image of the requested platform, and says only `image not
    known` otherwise; name the mismatch instead."""
    have = image_platform(reference, storage=storage)
    want = platform.lower().split("/")
    if have is not None and have.split("/")[:len(want)] != want[:len(have.split("/"))]:
        raise BuildError(f"base image {bounded(reference)} is {have} in buildah's storage, "
                         f"not the requested platform {bounded(platform)}",
                         fix=f"bring in a {platform} build of it (`buildah pull --platform "
                         f"{platform} ...`), or build for {have}")


def _pull_tls_flags(environ: Mapping[str, str] | None = None) -> list[str]:
    value = (os.environ if environ is None else environ).get(ENV_TLS_VERIFY, "")
    if value not in ("", "true", "false"):
        raise InputError(f"${ENV_TLS_VERIFY} is {bounded(value)}", fix='set it to "true" or "false"')
    return ["--tls-verify=false"] if value == "false" else []


def _pull(source: str, storage: Storage | None, timeout: float) -> str:
    proc = _buildah(["pull", "--quiet", "--policy", "always", *_pull_tls_flags(), "--", source],
                    storage, timeout=timeout)
    lines = proc.stdout.split()
    if proc.returncode != 0 or not lines:
        raise BuildError(f"buildah could not pull {bounded(source, 300)}: "
                         f"{_first_error(proc.stderr)}",
                         log_tail=_tail(proc.stderr), fix=_BASE_FIX)
    return _sha(lines[-1])


_BASE_FIX = ("make the image present in buildah's storage: `buildah pull docker-daemon:REF` (from "
             "a local Docker engine), `buildah pull oci-archive:PATH`, or from a registry; for "
             "the local CPU image run `triton-packager base-image` first")


def _docker_engine_id(reference: str) -> str | None:
    """The local Docker engine's ID for `reference`, None when no engine answers or lacks it."""
    try:
        from packager.executor.images import docker
    except ImportError:  # the docker SDK is absent: no engine to copy from
        return None
    try:
        return docker.image_id(reference)
    except BuildError:
        return None


def ensure_image(reference: str, *, storage: Storage | None = None, name: str | None = None,
                 timeout: float = TRANSFER_TIMEOUT, pull: bool = False) -> str:
    """The ID of `reference` in buildah's storage, bringing it in first when needed.

    `reference` may be a name in storage, `docker-daemon:REF` (copied from the local Docker
    engine unless storage already holds the same image ID), `oci-archive:PATH` or
    `docker-archive:PATH` (a file). A plain name that storage lacks is copied from the local
    Docker engine when one has it, else pulled from its registry. `name` tags the result
    (what a Dockerfile's FROM will call an image read from an archive). `pull`: a registry
    name (plain or `docker://`) is pulled from its registry (`--policy always`) even when
    storage holds an image of that name, which a kept store may hold from another run."""
    transport, rest = split_transport(reference)
    if transport in ARCHIVE_TRANSPORTS:
        path = archive_path(reference)[1]
        if not path.is_file():
            raise BuildError(f"image archive {bounded(str(path), 300)} does not exist",
                             fix=_BASE_FIX)
        # `oci-archive:PATH:NAME` selects the image whose ref.name annotation is NAME; archives
        # written by `buildah push IMAGE oci-archive:PATH` or skopeo hold one image and no such
        # name. So the file alone first, the selector only when the file holds several images.
        try:
            got = _pull(f"{transport}:{path}", storage, timeout)
        except BuildError:
            if rest == str(path):
                raise
            got = _pull(reference, storage, timeout)
    elif transport == DAEMON_TRANSPORT:
        want = _docker_engine_id(rest)
        if want is None:
            raise BuildError(f"image {bounded(rest)} is not in the local Docker engine "
                             "(or no engine answers)", fix=_BASE_FIX)
        got = want if image_id(rest, storage=storage) == want else _pull(reference, storage, timeout)
    elif pull and transport in ("", REGISTRY_TRANSPORT):
        got = _pull(f"{REGISTRY_TRANSPORT}://{rest}", storage, timeout)
    else:
        found = image_id(rest, storage=storage)
        if found is not None:
            got = found
        elif _docker_engine_id(rest) is not None:
            got = _pull(f"{DAEMON_TRANSPORT}:{rest}", storage, timeout)
        else:
            got = _pull(f"{REGISTRY_TRANSPORT}://{rest}" if transport != STORAGE_TRANSPORT else rest,
                        storage, timeout)
    if name is not None:
        tag_image(got, name, storage=storage)
    return got


def tag_image(image: str, name: str, *, storage: Storage | None = None) -> None:
    proc = _buildah(["tag", image.removeprefix("sha256:"), name], storage, timeout=QUERY_TIMEOUT)
    if proc.returncode != 0:
        raise BuildError(f"buildah could not tag {image[:19]} as {bounded(name)}: "
                         f"{_first_error(proc.stderr)}")


def remove_image(image: str, *, storage: Storage | None = None) -> None:
    """Remove `image` (an ID: with every name it has) from storage; its layers stay while other
    images use them. An image already gone is no error."""
    if image_id(image, storage=storage) is None:
        return
    proc = _buildah(["rmi", "--force", "--", image.removeprefix("sha256:")], storage,
                    timeout=QUERY_TIMEOUT)
    if proc.returncode != 0:
        raise BuildError(f"buildah could not remove {image[:19]}: {_first_error(proc.stderr)}",
                         log_tail=_tail(proc.stderr))


def copy_to_docker(reference: str, name: str, *, storage: Storage | None = None,
                   timeout: float = TRANSFER_TIMEOUT) -> None:
    """Copy `reference` (a name or ID) from buildah's storage into the local Docker engine as
    `name` (for `verify`, which runs images with the engine). The ID stays the same."""
    proc = _buildah(["push", "--quiet", "--", reference, f"{DAEMON_TRANSPORT}:{name}"], storage,
                    timeout=timeout)
    if proc.returncode != 0:
        raise BuildError(f"buildah could not copy {bounded(reference)} to the Docker engine: "
                         f"{_first_error(proc.stderr)}", log_tail=_tail(proc.stderr),
                         fix="start dockerd, or push the image and run it where it is pulled")


def import_rootfs(tar_path: Path, reference: str, *, env: Sequence[str] = (),
                  workdir: str | None = None, labels: Mapping[str, str] | None = None,
                  cmd: Sequence[str] = (), storage: Storage | None = None,
                  timeout: float = TRANSFER_TIMEOUT) -> str:
    """An image from a root filesystem tar (`docker import`, without an engine): a container
    from scratch, the tar unpacked into it, its config set, committed as `reference`."""
    proc = _buildah(["from", "--quiet", "scratch"], storage, timeout=QUERY_TIMEOUT)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise BuildError(f"buildah could not start a container: {_first_error(proc.stderr)}",
                         log_tail=_tail(proc.stderr))
    ctr = proc.stdout.strip().splitlines()[-1]
    try:
        config = [f"--env={e}" for e in env] + [f"--label={k}={v}" for k, v in
                                                 (labels or {}).items()]
        if workdir:
            config.append(f"--workingdir={workdir}")
        if cmd:
            config.append(f"--cmd={json.dumps(list(cmd))}")
        for args, what in ((["add", "--quiet", ctr, str(tar_path), "/"], "unpack the rootfs"),
                           (["config", *config, ctr], "configure the image"),
                           (["commit", "--quiet", "--format", "docker", "--rm", ctr, reference],
                            f"commit {reference}")):
            proc = _buildah(args, storage, timeout=timeout)
            if proc.returncode != 0:
                raise BuildError(f"buildah could not {what}: {_first_error(proc.stderr)}",
                                 log_tail=_tail(proc.stderr))
    finally:
        _buildah(["rm", ctr], storage, timeout=QUERY_TIMEOUT)  # gone already after a commit
    found = image_id(reference, storage=storage)
    if found is None:
        raise BuildError(f"buildah committed {reference}, but it is not in storage")
    return found


def export_image(reference: str, output: str, *, name: str | None = None,
                 storage: Storage | None = None, timeout: float = TRANSFER_TIMEOUT) -> Path:
    """Write the image as a file (`oci-archive:PATH` / `docker-archive:PATH`), named `name`
    inside (the tag `docker load` gives it; the OCI ref.name annotation). Replaces PATH."""
    transport, path = check_archive_output(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    # buildah refuses to write into an existing docker-archive; write beside, then rename.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    dest = f"{transport}:{tmp}" + (f":{name}" if name else "")
    try:
        proc = _buildah(["push", "--quiet", "--", reference, dest], storage, timeout=timeout,
                        writes_to=path.parent)
        if proc.returncode != 0:
            raise BuildError(f"buildah could not write {bounded(output, 300)}: "
                             f"{_first_error(proc.stderr)}", log_tail=_tail(proc.stderr),
                             fix="check the path and the free space there")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --- build -------------------------------------------------------------------------------------

def _stream(cmd: Sequence[str], env: Mapping[str, str], timeout: float, report: Reporter,
            tail: collections.deque[str]) -> tuple[int, bool]:
    """Run `cmd`, each output line to report.log and `tail`; (exit code, deadline passed)."""
    expired = threading.Event()
    with child(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
               env=dict(env)) as proc:

        def on_deadline() -> None:
            expired.set()
            kill_group(proc)

        timer = threading.Timer(timeout, on_deadline)
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                if line.strip():
                    tail.append(line)
                    report.log(line)
            code = proc.wait()
        finally:
            timer.cancel()
    return code, expired.is_set()


def build_command(context: Path, tag: str, *, buildargs: Mapping[str, str] | None = None,
                  nocache: bool = False, platform: str | None = None,
                  labels: Mapping[str, str] | None = None, iidfile: Path | None = None,
                  isolation: str = "chroot", storage: Storage | None = None) -> list[str]:
    """The `buildah build` argument list (after the binary). Build argument values are not in
    it: the caller passes them in the environment."""
    args = [*(storage or Storage.from_env()).flags(), "build",
            "--isolation", isolation, "--layers", "--pull=never", "--format", "docker",
            "--http-proxy=false", "--force-rm",
            "-f", str(context / "Dockerfile"), "-t", tag]
    if iidfile is not None:
        args += ["--iidfile", str(iidfile)]
    if nocache:
        args.append("--no-cache")
    if platform:
        args += ["--platform", platform]
    for key in buildargs or {}:
        if not _BUILD_ARG_RE.fullmatch(key):
            raise InputError(f"build argument name {bounded(key)} is not a variable name")
        args += ["--build-arg", key]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    args.append(str(context))
    return args


def build_image(context: Path, tag: str, report: Reporter,
                buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                platform: str | None = None, labels: dict[str, str] | None = None,
                storage: Storage | None = None, timeout: float = BUILD_TIMEOUT) -> str:
    """Build `context` (its Dockerfile, honouring its .dockerignore) as `tag`; return the ID.
    buildah reads the context in place: nothing is sent or copied first."""
    binary = _binary()
    storage = storage or Storage.from_env()
    dockerfile = (context / "Dockerfile").read_text(encoding="utf-8")
    for ref in base_images(dockerfile):
        ensure_image(ref, storage=storage)
        if platform:
            _check_platform(ref, platform, storage)
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
    with tempfile.TemporaryDirectory(prefix="triton-packager-buildah-") as tmp:
        iidfile = Path(tmp) / "iid"
        cmd = [binary, *build_command(context, tag, buildargs=buildargs, nocache=nocache,
                                      platform=platform, labels=labels, iidfile=iidfile,
                                      storage=storage)]
        env = {**os.environ, **(buildargs or {})}
        try:
            code, expired = _stream(cmd, env, timeout, report, tail)
        except OSError as exc:
            raise BuildError(f"cannot run buildah: {exc}", fix=INSTALL_FIX) from None
        if expired:
            raise BuildError(f"the image build passed its deadline of {timeout:.0f}s",
                             log_tail=tuple(tail), fix="find the slow step in the log above")
        if code != 0:
            _check_space("\n".join(tail), "the image build", storage)
            raise BuildError(f"the image build failed: {_first_error(chr(10).join(tail))}",
                             log_tail=tuple(tail),
                             fix="read the build log above; fix the step or the base image")
        built = iidfile.read_text(encoding="ascii").strip() if iidfile.exists() else ""
    if not built:
        raise BuildError(f"the build ended but buildah wrote no image ID for {tag}",
                         log_tail=tuple(tail))
    return _sha(built)


# --- the weights image, assembled ---------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def assemble_weights(context: Path, tag: str, base_ref: str, labels: Mapping[str, str], *,
                     max_layer_size: int = layers.DEFAULT_MAX_LAYER_SIZE,
                     storage: Storage | None = None, timeout: float = TRANSFER_TIMEOUT) -> str:
    """The weights image `tag`: the base plus the weights layers (executor/images/weights.py),
    read into storage by `buildah pull oci:` -- no container, no COPY, no second tar. The OCI
    layout holds the config and manifest only; each layer's descriptor names a loopback URL
    the layer is streamed from, out of the weights context, while buildah reads it
    (layer_server.py: buildah keeps a temporary copy of every blob it pulls, so a layout of
    blob files would cost a second copy of the weights). The base's layers are named by their
    diff IDs and not served: storage already holds them and reuses them. The layout is removed
    whatever happens; the image's ID (the config digest) is returned."""
    doc = _inspect(base_ref, storage)
    if doc is None or not doc.get("Config"):
        raise BuildError(f"cannot read base image {bounded(base_ref)} from buildah's storage",
                         fix=_BASE_FIX)
    base = json.loads(str(doc["Config"]))
    served = layer_server.served_layers(context, weights.plan(context, max_layer_size))
    diff_ids = [s.digest for s in served]
    config = layers.image_config(base, diff_ids, labels=labels,
                                 created_by=[s.group.history() for s in served])
    # buildah names an image pulled from `oci:PATH` after PATH, which must then be a valid
    # (lower-case) reference: such a name, untagged below; 0700, as the layout names the
    # server's secret URLs.
    tmp = tempfile.gettempdir()
    if not re.fullmatch(r"[a-z0-9/._-]+", tmp):
        tmp = "/tmp"
    top = Path(tmp) / f"triton-packager-{secrets.token_hex(8)}"
    top.mkdir(mode=0o700)
    layout = top / "weights"
    try:
        with layer_server.LayerServer(context, {s.digest.removeprefix("sha256:"): s
                                                for s in served}) as server:
            (layout / "blobs" / "sha256").mkdir(parents=True)
            descriptors = [{"mediaType": OCI_LAYER, "digest": d, "size": 0}
                           for d in (base.get("rootfs") or {}).get("diff_ids") or []]
            descriptors += [{"mediaType": OCI_LAYER, "digest": s.digest, "size": s.size,
                             "urls": [server.url(s.digest)]} for s in served]
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, **_blob(layout, config)},
                        "layers": descriptors}
            index = {"schemaVersion": 2, "manifests": [
                {"mediaType": OCI_MANIFEST,
                 **_blob(layout, json.dumps(manifest, sort_keys=True).encode())}]}
            (layout / "index.json").write_text(json.dumps(index))
            (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
            try:
                got = _pull(f"oci:{layout}", storage, timeout)
            except BuildError:
                if server.failure is not None:  # the cause, not buildah's view of it
                    raise server.failure from None
                raise
            except EnvironmentFault as exc:  # a full disk: say what was being written
                raise EnvironmentFault(f"storing the weights image: {exc.message}",
                                       fix=exc.fix, log_tail=exc.log_tail) from None
        tag_image(got, tag, storage=storage)
        _buildah(["rmi", f"localhost{layout}:latest"], storage, timeout=QUERY_TIMEOUT)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    want = "sha256:" + hashlib.sha256(config).hexdigest()
    if got != want:
        raise BuildError(f"buildah stored the weights image as {got[:19]}, not {want[:19]}")
    return got


# --- layers for the registry pusher ---------------------------------------------------------------

def diff_ids(reference: str, *, storage: Storage | None = None) -> list[str]:
    doc = _inspect(reference, storage)
    if doc is None:
        raise PushError(f"image {bounded(reference)} is not in buildah's storage",
                        fix="package the model again")
    return list(((doc.get("OCIv1") or {}).get("rootfs") or {}).get("diff_ids") or [])


def export_layers(reference: str, skip: Mapping[str, int], workdir: Path, *,
                  storage: Storage | None = None,
                  timeout: float = TRANSFER_TIMEOUT) -> tuple[bytes, dict[str, ExportedLayer]]:
    """The config and the layers not in `skip`, gzipped, written by `buildah push` into an OCI
    layout under `workdir`. A layer in `skip` is not written: storage offers each layer under
    its diff ID, and an OCI layout reuses a blob file already named so, so an empty file of
    that name stands for it."""
    doc = _inspect(reference, storage)
    if doc is None or not doc.get("Config"):
        raise PushError(f"image {bounded(reference)} is not in buildah's storage",
                        fix="package the model again")
    config = str(doc["Config"]).encode()
    layout = workdir / "oci"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for diff_id in skip:
        (blobs / diff_id.removeprefix("sha256:")).touch()
    try:
        proc = _buildah(["push", "--quiet", "--format", "oci", "--", reference, f"oci:{layout}"],
                        storage, timeout=timeout, writes_to=workdir)
    except EnvironmentFault as exc:  # the spool in the output directory filled
        raise EnvironmentFault(f"cannot write the layers to push under {workdir}: {exc.message}",
                               fix="free space beside the output directory (the layers the "
                               "registry lacks, but the weights, are written there once before "
                               "they are sent) and push again", log_tail=exc.log_tail) from None
    if proc.returncode != 0:
        raise PushError(f"buildah could not export the layers of {bounded(reference)}: "
                        f"{_first_error(proc.stderr)}", log_tail=_tail(proc.stderr),
                        fix="check the free space beside the output directory")
    index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    manifest = json.loads((blobs / index["manifests"][-1]["digest"].removeprefix("sha256:"))
                          .read_text(encoding="utf-8"))
    ids = diff_ids(reference, storage=storage)
    out: dict[str, ExportedLayer] = {}
    for diff_id, desc in zip(ids, manifest["layers"], strict=True):
        if diff_id in skip:
            continue
        out[diff_id] = ExportedLayer(blobs / str(desc["digest"]).removeprefix("sha256:"),
                                     str(desc["digest"]),
                                     gzipped=str(desc["mediaType"]).endswith("gzip"))
    return config, out


def list_images(*, storage: Storage | None = None) -> list[ImageInfo]:
    """Every image in storage, with its names, labels and layers (`buildah inspect` of each)."""
    proc = _buildah(["images", "--json", "--all", "--no-trunc"], storage, timeout=QUERY_TIMEOUT)
    if proc.returncode != 0:
        raise BuildError(f"buildah could not list images: {_first_error(proc.stderr)}")
    out = []
    for entry in json.loads(proc.stdout or "[]") or []:
        image = _sha(str(entry.get("id") or ""))
        doc = _inspect(image.removeprefix("sha256:"), storage) or {}
        oci = doc.get("OCIv1") or {}
        out.append(ImageInfo(
            image, tuple(str(n) for n in entry.get("names") or []),
            {str(k): str(v) for k, v in ((oci.get("config") or {}).get("Labels") or {}).items()},
            tuple((oci.get("rootfs") or {}).get("diff_ids") or []),
            _size(str(entry.get("size") or ""))))
    return out


def _size(text: str) -> int:
    """Bytes from buildah's human size ("436 MB", decimal units); 0 when unreadable."""
    m = re.fullmatch(r"([0-9.]+)\s*([kMGT]?B)", text.strip())
    if m is None:
        return 0
    return int(float(m.group(1)) * 1000 ** "BkMGT".index(m.group(2)[0]))


# --- push --------------------------------------------------------------------------------------

def push(reference: str, dest: str, authfile: Path | None = None, tls_verify: bool = True,
         cert_dir: Path | None = None, timeout: float = TRANSFER_TIMEOUT, *,
         storage: Storage | None = None) -> str:
    """Push `reference` from storage to registry reference `dest` (`docker://` is implied);
    return the pushed manifest's digest (`sha256:...`).

    Credentials come only from `authfile` (or buildah's defaults: REGISTRY_AUTH_FILE, the
    containers auth.json, ~/.docker/config.json), never from the command line. The caller
    has checked the auth file (push.check_authfile)."""
    transport, rest = split_transport(dest)
    target = f"{REGISTRY_TRANSPORT}://{rest if transport == REGISTRY_TRANSPORT else dest}"
    with tempfile.TemporaryDirectory(prefix="triton-packager-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        args = ["push", "--digestfile", str(digestfile), f"--tls-verify={str(tls_verify).lower()}"]
        if authfile is not None:
            args += ["--authfile", str(authfile)]
        if cert_dir is not None:
            args += ["--cert-dir", str(cert_dir)]
        try:
            proc = _buildah([*args, "--", reference, target], storage, timeout=timeout)
        except BuildError as exc:  # a deadline or a missing binary, in push's own exit code
            raise PushError(f"push of {bounded(dest)} failed: {exc.message}",
                            log_tail=exc.log_tail, fix=exc.fix) from None
        if proc.returncode != 0:
            raise PushError(f"push of {bounded(dest)} failed: {_first_error(proc.stderr)}",
                            log_tail=_tail(proc.stderr),
                            fix="check the registry address, that it is up, the credentials and "
                            "the registry's CA (--ca-bundle)")
        digest = digestfile.read_text(encoding="ascii").strip() if digestfile.exists() else ""
    if not digest.startswith("sha256:"):
        raise PushError(f"push of {bounded(dest)} reported no digest",
                        fix="check the registry's log")
    return digest


@contextmanager
def _authfile_for(credentials: Credentials, target: str) -> Iterator[Path | None]:
    """The auth file buildah reads. A username and password become a private temporary auth
    file (mode 0600 in a 0700 directory, removed after the push): buildah's `--creds` would put
    the password on the command line, where any local user reads it in `ps`."""
    if credentials.username is None:
        yield credentials.authfile
        return
    token = base64.b64encode(
        f"{credentials.username}:{credentials.password or ''}".encode()).decode("ascii")
    with tempfile.TemporaryDirectory(prefix="triton-packager-auth-") as tmp:
        path = Path(tmp) / "auth.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"auths": {registry_host(target): {"auth": token}}}, fh)
        yield path


@contextmanager
def _cert_dir(tls: Tls) -> Iterator[Path | None]:
    """buildah reads a registry's CA from a directory of *.crt files (`--cert-dir`)."""
    if tls.ca_bundle is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="triton-packager-certs-") as tmp:
        shutil.copyfile(tls.ca_bundle, Path(tmp) / "ca.crt")
        yield Path(tmp)


# --- the builder -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildahBuilder:
    """buildah with the storage the environment selects (Storage.from_env)."""

    name: str = "buildah"
    missing: str = "buildah is not installed"
    setup_hint: str = INSTALL_FIX
    reads_archives: bool = True
    writes_archives: bool = True

    def available(self) -> bool:
        return available()

    def require(self) -> None:
        require()

    def build_image(self, context: Path, tag: str, report: Reporter,
                    buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                    platform: str | None = None, labels: dict[str, str] | None = None) -> str:
        return build_image(context, tag, report, buildargs, nocache=nocache, platform=platform,
                           labels=labels)

    def build_weights(self, context: Path, tag: str, base_ref: str, report: Reporter, *,
                      labels: dict[str, str], nocache: bool = False,
                      platform: str | None = None,
                      max_layer_size: int = layers.DEFAULT_MAX_LAYER_SIZE) -> str:
        if self.weights_from_dockerfile(platform):
            return build_image(context, tag, report, nocache=nocache, platform=platform,
                               labels=labels)
        # The layers written once and pulled into storage: a COPY would read the context, write
        # a container layer and commit it again (packager/layers.py).
        return assemble_weights(context, tag, base_ref, labels, max_layer_size=max_layer_size)

    def weights_from_dockerfile(self, platform: str | None) -> bool:
        return platform is not None

    def image_id(self, reference: str) -> str | None:
        try:
            return image_id(reference)
        except BuildError:
            return None

    def image_exists(self, reference: str, image_id: str) -> bool:
        return image_exists(reference, image_id)

    def image_labels(self, reference: str) -> dict[str, str] | None:
        return image_labels(reference)

    def manifest_digest(self, reference: str) -> str | None:
        digest = str((_inspect(reference, None) or {}).get("FromImageDigest") or "")
        return digest if digest.startswith("sha256:") else None

    def ensure_image(self, reference: str, name: str | None = None, *,
                     pull: bool = False) -> str:
        return ensure_image(reference, name=name if name != reference else None, pull=pull)

    def remove_image_id(self, image_id: str) -> None:
        remove_image(image_id)

    def check_base_source(self, source: str | None) -> None:
        if source is None:
            return
        transport, path = archive_path(source)
        if transport and not path.is_file():
            raise InputError("does not exist or is not a file", file=str(path),
                             fix="give the image archive `triton-packager base-image --output "
                             "oci-archive:PATH` (or `buildah push IMAGE oci-archive:PATH`) wrote")

    def import_rootfs(self, tar_path: Path, reference: str, *, env: Sequence[str],
                      workdir: str, labels: Mapping[str, str], cmd: Sequence[str]) -> str:
        return import_rootfs(tar_path, reference, env=env, workdir=workdir, labels=labels,
                             cmd=cmd)

    def export_image(self, reference: str, output: str, *, name: str | None = None) -> Path:
        return export_image(reference, output, name=name)

    def make_runnable(self, image: str, image_id: str | None, report: Reporter) -> None:
        """The Docker engine runs the image: copy it there from buildah's storage unless the
        engine already holds the same image (by ID)."""
        from packager.executor.images import docker

        if image_id and docker.image_id(image) == image_id:
            return
        report.step(f"verify: copying {image} from buildah's storage to the Docker engine")
        copy_to_docker(image_id or image, image)

    def run_hint(self, image: str) -> str:
        return (" (it is in buildah's storage: `triton-packager push` it, or `buildah push "
                f"{image} {DAEMON_TRANSPORT}:{image}`)")

    def check_push(self, tls: Tls) -> None:
        return None

    def diff_ids(self, image: str) -> list[str]:
        return diff_ids(image)

    def export_layers(self, image: str, skip: Mapping[str, int], workdir: Path,
                      ) -> tuple[bytes, dict[str, ExportedLayer]]:
        return export_layers(image, skip, workdir)

    def tag_image(self, image: str, name: str) -> None:
        tag_image(image, name)

    def list_images(self) -> list[ImageInfo]:
        return list_images()

    def remove_image(self, name: str) -> None:
        proc = _buildah(["rmi", "--", name], None, timeout=QUERY_TIMEOUT)
        if proc.returncode != 0:
            raise BuildError(f"buildah could not remove {bounded(name)}: "
                             f"{_first_error(proc.stderr)}")

    def push(self, image: str, target: str, report: Reporter, credentials: Credentials,
             tls: Tls, image_id: str | None = None) -> str:
        # By ID: an earlier push renamed the image in result.json to its pushed name, which
        # only the tag below gives it in storage (a rerun on a kept volume pushes it again).
        source = image_id or image
        report.step(f"push: {target} (buildah; credentials from {credentials.source})")
        with _authfile_for(credentials, target) as authfile, _cert_dir(tls) as cert_dir:
            digest = push(source, target, authfile=authfile, tls_verify=tls.verify,
                          cert_dir=cert_dir)
        if target != image:
            tag_image(source, target)
        return digest


_CHECKED: type[Builder] = BuildahBuilder  # mypy checks the protocol here
