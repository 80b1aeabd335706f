"""Build the packager's own image, `triton-packager:latest` and `triton-packager:<version>`.

It is the image every Tekton step runs (deploy/tekton/task-*.yaml: `python -m packager ...` in a
privileged container, buildah's storage a volume at /var/lib/containers). Nothing is pulled
from an image registry; only the package registries are reached, and only from the host:

1. A Debian root filesystem made with debootstrap (PACKAGES: Python, Debian's numpy, buildah),
   apt's caches and the docs removed, imported into Docker as `ROOTFS_REPO:<recipe>`. It is
   reused while its recipe (suite and packages) is unchanged, so a change to the packager's code
   costs seconds, not a debootstrap.
2. The packager and its dependencies as wheels, made on the host with `pip wheel` (the host's pip
   reaches PyPI; a container behind this machine's TLS-inspecting proxy would not). The host's
   Python and the image's are both CPython 3.11 on glibc, so the wheels fit.
3. A two-stage `docker build` FROM the root filesystem: the first stage makes the venv VENV
   (--system-site-packages, so Debian's numpy is used) and installs the wheels offline
   (`--no-index`); the final stage copies only the venv, so no wheel and no pip cache lands in
   a layer.

The image carries RECIPE_LABEL, a digest of the recipe and of the packager's sources; a build
whose digest matches the existing image's is skipped (`--force` rebuilds everything, e.g. to
pick up new releases of the dependencies or Debian security updates).

buildah's storage driver (ENV TRITON_PACKAGER_BUILDAH_DRIVER and STORAGE_DRIVER, read by the
packager and by buildah itself): `overlay`. It works in a privileged container whose
/var/lib/containers is a volume on ext4/xfs (Tekton's workspace, `docker run -v`), shares layers
between images, and is much faster and smaller than `vfs`, which stores every layer as a full
copy. Where /var/lib/containers is not a volume (overlay on the container's own overlayfs) or
lies on NFS, overlay mounts fail: set TRITON_PACKAGER_BUILDAH_DRIVER=vfs and STORAGE_DRIVER=vfs.

Pushing it (`--push REGISTRY/REPOSITORY[:TAG]`) is what makes it a step image a cluster can use:
the image goes to the user's registry through the very machinery of `triton-packager push`
(packager/executor/push.py: the same --authfile, TRITON_PACKAGER_REGISTRY_USERNAME/_PASSWORD
(or _FILE), $REGISTRY_AUTH_FILE, --ca-bundle and --tls-verify; buildah by default, so a private
CA needs no Docker engine configuration), and the digest-pinned reference
(`REGISTRY/REPOSITORY@sha256:...`) is printed on stdout: the value of the Tekton Tasks'
`packagerImage` param. A digest never changes, so nodes pull it once and never pull a newer one
by surprise (a `:latest` reference would make Kubernetes pull on every start).

Usage: python deploy/image/build.py [--force] [--mirror URL]   (as root, with debootstrap)
       python deploy/image/build.py --push registry.example.com/ml/triton-packager \
           [--authfile auth.json] [--ca-bundle ca.crt] [--tls-verify false] [--builder docker]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

import packager
from packager.executor import process
from packager.executor.cpu_base import apt_mirror

REPO = Path(__file__).resolve().parents[2]
IMAGE = "triton-packager"
ROOTFS_REPO = "triton-packager/packager-rootfs"
RECIPE_LABEL = "io.triton-packager.image.recipe"
ROOTFS_LABEL = "io.triton-packager.image.rootfs"
STAGE_LABEL = "io.triton-packager.image.stage"  # the install stage, removed after the build
VENV = "/opt/triton-packager"
SUITE = "bookworm"
# netavark: golang-github-containers-common (buildah's dependency) depends on the virtual
# container-network-stack, which debootstrap cannot resolve by itself; netavark is the small
# provider (4 MB). buildah brings containers-common's /etc/containers/policy.json and
# registries.conf, and uidmap.
PACKAGES = ("python3", "python3-venv", "python3-numpy", "buildah", "netavark",
            "ca-certificates", "tar", "gzip")
ROOTFS_RECIPE_VERSION = "1"
BUILDAH_DRIVER = "overlay"
SOURCES = ("packager", "templates", "pyproject.toml", "README.md")

DEBOOTSTRAP_TIMEOUT = 1800.0
WHEEL_TIMEOUT = 900.0
BUILD_TIMEOUT = 1200.0
DOCKER_TIMEOUT = 600  # seconds for one request to the engine

Log = Callable[[str], None]


class ImageBuildError(Exception):
    """A step of the image build failed; the message says which, with its output's tail."""


@dataclass(frozen=True)
class Built:
    image_id: str
    tags: tuple[str, ...]
    recipe: str
    skipped: bool
    seconds: float


def version() -> str:
    return packager.__version__


def tags() -> tuple[str, str]:
    return f"{IMAGE}:latest", f"{IMAGE}:{version()}"


def rootfs_recipe() -> str:
    text = "\n".join((ROOTFS_RECIPE_VERSION, SUITE, *PACKAGES))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _source_files(root: Path) -> Iterable[Path]:
    for name in SOURCES:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                    yield f


def recipe_digest(root: Path = REPO) -> str:
    """What the image is made of: the root filesystem's recipe, this file (the Dockerfile,
    environment and labels are written here) and every file the packager's wheel is built from."""
    h = hashlib.sha256()
    h.update(rootfs_recipe().encode())
    for f in (Path(__file__).resolve(), *_source_files(root)):
        h.update(f.relative_to(root).as_posix().encode() if f.is_relative_to(root) else f.name.encode())
        h.update(b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=DOCKER_TIMEOUT)
        c.ping()
        return c
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"cannot reach the Docker engine: {exc} (run `bash .ci/docker-up`)"
                              ) from None


def _labels(ref: str) -> dict[str, str] | None:
    try:
        return dict(client().images.get(ref).labels or {})
    except docker.errors.ImageNotFound:
        return None


def existing(recipe: str | None = None) -> str | None:
    """The ID of `triton-packager:latest` when it was built from `recipe` (default: the
    current one) and `triton-packager:<version>` is the same image; else None."""
    want = recipe or recipe_digest()
    c = client()
    try:
        ids = {c.images.get(t).id for t in tags()}
        img = c.images.get(tags()[0])
    except docker.errors.ImageNotFound:
        return None
    if len(ids) != 1 or (img.labels or {}).get(RECIPE_LABEL) != want:
        return None
    return str(img.id)


def _run(cmd: list[str], what: str, timeout: float, **kwargs: Any) -> str:
    try:
        proc = process.run(cmd, timeout=timeout, **kwargs)
    except process.Timeout as exc:
        tail = "\n".join(exc.output.strip().splitlines()[-15:])
        raise ImageBuildError(f"{what} did not finish within {timeout:.0f}s\n{tail}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode})\n{tail}")
    return proc.stdout


def _trim(rootfs: Path) -> None:
    """Drop what a container never reads: apt's caches and lists, docs (copyright files stay),
    man pages, and the host's resolv.conf that debootstrap copied in."""
    for rel in ("var/cache/apt", "var/lib/apt/lists", "usr/share/man", "usr/share/info",
                "var/cache/debconf/templates.dat-old", "var/cache/debconf/config.dat-old"):
        p = rootfs / rel
        if p.is_dir():
            for child in p.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        elif p.exists():
            p.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    doc = rootfs / "usr/share/doc"
    for f in sorted(doc.rglob("*"), reverse=True):
        if f.is_symlink() or f.is_file():
            if f.name != "copyright":
                f.unlink()
        elif f.is_dir() and not any(f.iterdir()):
            f.rmdir()
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    (rootfs / "etc/resolv.conf").write_text("")
    (rootfs / "etc/hostname").write_text("triton-packager\n")
    (rootfs / "var/lib/containers").mkdir(parents=True, exist_ok=True)


def ensure_rootfs(log: Log, work: Path, *, force: bool = False, mirror: str | None = None) -> str:
    """The Debian root filesystem image, `ROOTFS_REPO:<rootfs recipe>`, built when missing."""
    recipe = rootfs_recipe()
    ref = f"{ROOTFS_REPO}:{recipe}"
    if not force and (_labels(ref) or {}).get(ROOTFS_LABEL) == recipe:
        log(f"root filesystem {ref} is up to date")
        return ref
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise ImageBuildError("the root filesystem needs root and debootstrap "
                              "(apt-get install debootstrap; .ci/docker-up installs it)")
    rootfs = work / "rootfs"
    source = mirror or apt_mirror()
    log(f"debootstrap {SUITE} from {source}: {', '.join(PACKAGES)}")
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
          str(rootfs), source], "debootstrap", DEBOOTSTRAP_TIMEOUT)
    for path in ("etc/containers/policy.json", "etc/containers/registries.conf", "usr/bin/buildah",
                 "usr/bin/python3"):
        if not (rootfs / path).exists():
            raise ImageBuildError(f"debootstrap left no /{path} in the root filesystem")
    _trim(rootfs)
    tar_path = work / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        for child in sorted(rootfs.iterdir()):
            tar.add(child, arcname=child.name)
    shutil.rmtree(rootfs)
    log(f"importing {ref}")
    try:
        client().api.import_image_from_file(
            str(tar_path), repository=ROOTFS_REPO, tag=recipe,
            changes=[f"LABEL {ROOTFS_LABEL}={recipe}",
                     "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"docker import of the root filesystem failed: {exc}") from None
    finally:
        tar_path.unlink(missing_ok=True)
    if (_labels(ref) or {}).get(ROOTFS_LABEL) != recipe:
        raise ImageBuildError(f"{ref} is missing after the import")
    _untag_old_rootfs(keep=ref)
    return ref


def _untag_old_rootfs(keep: str) -> None:
    c = client()
    for img in c.images.list(name=ROOTFS_REPO):
        for t in img.tags:
            if t != keep:
                with contextlib.suppress(docker.errors.APIError):  # still in use: leave it
                    c.images.remove(t)


def make_wheels(dest: Path, log: Log) -> None:
    """The packager's wheel and all of its dependencies', for the image's CPython 3.11."""
    log(f"pip wheel {REPO} (the packager and its dependencies)")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
          "--wheel-dir", str(dest), str(REPO)], "pip wheel", WHEEL_TIMEOUT)
    if not list(dest.glob(f"triton_packager-{version()}-*.whl")):
        raise ImageBuildError(f"pip wheel left no triton_packager-{version()} wheel in {dest}")


def dockerfile(rootfs: str) -> str:
    env = {
        "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "VIRTUAL_ENV": VENV,
        "PYTHONUNBUFFERED": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # The packager passes --isolation chroot itself; this is the default of a bare `buildah`.
        "BUILDAH_ISOLATION": "chroot",
        "TRITON_PACKAGER_BUILDAH_DRIVER": BUILDAH_DRIVER,
        "STORAGE_DRIVER": BUILDAH_DRIVER,
    }
    env_lines = "".join(f"ENV {k}={json.dumps(v)}\n" for k, v in env.items())
    return (
        f"FROM {rootfs} AS install\n"
        "COPY wheels /tmp/wheels\n"
        f"RUN python3 -m venv --system-site-packages {VENV} \\\n"
        f" && {VENV}/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check"
        f" --find-links /tmp/wheels triton-packager=={version()} \\\n"
        f" && {VENV}/bin/python -m packager --version \\\n"
        f" && {VENV}/bin/python -c 'import numpy, onnx, tritonclient.grpc, tritonclient.http, docker'\n"
        f"LABEL {STAGE_LABEL}=install\n"
        f"FROM {rootfs}\n"
        f"COPY --from=install {VENV} {VENV}\n"
        f"{env_lines}"
        'CMD ["python", "-m", "packager", "--help"]\n'
    )


def _docker_build(context: Path, tag: str, labels: dict[str, str], log: Log, *,
                  nocache: bool) -> str:
    deadline = time.monotonic() + BUILD_TIMEOUT
    c = client()
    tail: list[str] = []
    try:
        for chunk in c.api.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False,
                                 decode=True, nocache=nocache, labels=labels):
            if "error" in chunk:
                raise ImageBuildError(f"docker build failed: {chunk['error']}\n" + "\n".join(tail))
            text = str(chunk.get("stream", "")).rstrip()
            if text:
                tail = [*tail[-14:], text]
                log(f"  | {text}")
            if time.monotonic() > deadline:
                raise ImageBuildError(f"docker build did not finish within {BUILD_TIMEOUT:.0f}s")
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"docker build failed: {exc}\n" + "\n".join(tail)) from None
    return str(c.images.get(tag).id)


def _current_ids() -> set[str]:
    """The IDs our tags name now: after a rebuild, those left untagged are ours to remove."""
    c = client()
    ids = set()
    for img in c.images.list(IMAGE) + c.images.list(ROOTFS_REPO):
        ids.add(str(img.id))
    return ids


def _prune(replaced: set[str]) -> None:
    """Remove what this build left untagged: the images our tags named before it (only those:
    an untagged image built FROM ours by someone else carries our labels too, and is not ours),
    and the install stages (their label is never inherited: the final stage starts afresh)."""
    c = client()
    dangling = {str(img.id) for img in c.images.list(filters={"dangling": True})}
    stages = {str(img.id) for img in c.images.list(filters={"label": STAGE_LABEL,
                                                              "dangling": True})}
    for image_id in (replaced & dangling) | stages:
        with contextlib.suppress(docker.errors.APIError):  # still used by a container
            c.images.remove(image_id)


def build(*, force: bool = False, mirror: str | None = None, log: Log | None = None) -> Built:
    """Build (or find up to date) `triton-packager:latest` and `triton-packager:<version>`."""
    say: Log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    started = time.monotonic()
    recipe = recipe_digest()
    latest, versioned = tags()
    if not force and (found := existing(recipe)):
        say(f"{latest} is up to date (recipe {recipe})")
        return Built(found, (latest, versioned), recipe, True, time.monotonic() - started)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "triton-packager"
    base.mkdir(parents=True, exist_ok=True)
    replaced = _current_ids()
    work = Path(tempfile.mkdtemp(prefix="packager-image-", dir=base))
    try:
        rootfs = ensure_rootfs(say, work, force=force, mirror=mirror)
        context = work / "context"
        make_wheels(context / "wheels", say)
        (context / "Dockerfile").write_text(dockerfile(rootfs))
        labels = {
            "org.opencontainers.image.title": "triton-packager",
            "org.opencontainers.image.description":
                "Packages model directories into NVIDIA Triton server images (with buildah)",
            "org.opencontainers.image.version": version(),
            "org.opencontainers.image.licenses": "Apache-2.0",
            "org.opencontainers.image.base.name": f"debian:{SUITE} (debootstrap)",
            RECIPE_LABEL: recipe,
            ROOTFS_LABEL: rootfs_recipe(),
            "io.triton-packager.image.buildah-driver": BUILDAH_DRIVER,
        }
        say(f"docker build {versioned}")
        image_id = _docker_build(context, versioned, labels, say, nocache=force)
        client().images.get(image_id).tag(IMAGE, "latest")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if existing(recipe) != image_id:
        raise ImageBuildError(f"{latest} and {versioned} are not the image just built")
    _prune(replaced)
    say(f"built {latest} and {versioned}: {image_id} (recipe {recipe})")
    return Built(image_id, (latest, versioned), recipe, False, time.monotonic() - started)


def push(target: str, *, authfile: Path | None = None, ca_bundle: Path | None = None,
         tls_verify: bool = True, builder: str = "buildah",
         environ: dict[str, str] | None = None) -> str:
    """Push `triton-packager:<version>` (built, or up to date) to `target`
    (REGISTRY/REPOSITORY[:TAG]; TAG defaults to the version) with `triton-packager push`'s
    checks, credentials and TLS options; return the digest-pinned reference."""
    from packager.errors import PackagerError
    from packager.executor.images.builder import Tls
    from packager.executor.images.registry import select
    from packager.executor.push import check_registry, check_tls, resolve_credentials
    from packager.executor.report import Reporter
    from packager.imageref import parse_reference

    try:
        ref = parse_reference(target, what="--push", allow_digest=False)
        registry = ref.repository.split("/", 1)[0]
        if "/" not in ref.repository:
            raise ImageBuildError(f"--push {target!r} names no registry: give "
                                  "REGISTRY/REPOSITORY, e.g. registry.example.com/ml/triton-packager")
        check_registry(registry)
        full = f"{ref.repository}:{ref.tag or version()}"
        credentials = resolve_credentials(authfile, os.environ if environ is None else environ)
        tls = Tls(ca_bundle, tls_verify)
        check_tls(tls)
        chosen = select(builder)
        chosen.check_push(tls)
        source = tags()[1]
        image_id = existing()
        if image_id is None:
            raise ImageBuildError(f"{source} is not built from the current sources")
        # The image is built by the Docker engine; a builder with its own storage (buildah)
        # copies it from there, the engine itself already holds it.
        chosen.ensure_image(f"docker-daemon:{source}")
        digest = chosen.push(source, full, Reporter.create(quiet=False, json_lines=False),
                             credentials, tls, image_id=image_id)
    except PackagerError as exc:
        raise ImageBuildError(str(exc)) from None
    return f"{ref.repository}@{digest}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="deploy/image/build.py",
                                description="Build the packager's own image (triton-packager).")
    p.add_argument("--force", action="store_true",
                   help="rebuild everything, debootstrap included, even when up to date")
    p.add_argument("--mirror", default=None,
                   help="Debian mirror for debootstrap (default: the one this machine's apt uses)")
    p.add_argument("--push", default=None, metavar="REGISTRY/REPOSITORY[:TAG]",
                   help="then push it there (TAG default: the version) and print the "
                   "digest-pinned reference, the Tekton Tasks' packagerImage")
    p.add_argument("--authfile", default=None, help="as `triton-packager push --authfile`")
    p.add_argument("--ca-bundle", default=None, help="as `triton-packager push --ca-bundle`")
    p.add_argument("--tls-verify", choices=("true", "false"), default="true",
                   help="as `triton-packager push --tls-verify`")
    p.add_argument("--builder", choices=("buildah", "docker"), default="buildah",
                   help="push with buildah (default; honours --ca-bundle) or the Docker engine")
    args = p.parse_args(argv)
    try:
        built = build(force=args.force, mirror=args.mirror)
        pushed = None if args.push is None else push(
            args.push, authfile=Path(args.authfile) if args.authfile else None,
            ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None,
            tls_verify=args.tls_verify == "true", builder=args.builder)
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = json.dumps({"image_id": built.image_id, "tags": list(built.tags),
                          "recipe": built.recipe, "skipped": built.skipped,
                          "seconds": round(built.seconds, 1), "pushed": pushed})
    if pushed is None:
        print(summary)
    else:  # stdout is the reference alone: PACKAGER_IMAGE=$(python deploy/image/build.py --push ...)
        print(summary, file=sys.stderr)
        print(pushed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
