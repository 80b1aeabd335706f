"""A CPU-only Triton base image, laid out like NGC's, from PyPI's nvidia-pytriton wheel.

NGC images cannot be pulled everywhere (not on these machines, not in many air-gapped
clusters), and users serving Python-backend models on CPU do not need a 10 GB CUDA image.
The recipe: a Debian root filesystem (debootstrap) with Python and numpy, the wheel's
`tritonserver` at /opt/tritonserver, its libraries at /nvidia_pytriton.libs (where the
binaries' relative RPATHs look), the stub for the image's Python, and a `triton-server`
user with uid 1000. Skipped when an image built from the same recipe exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.errors import BuildError, InputError, bounded
from packager.executor import process
from packager.executor.images import registry
from packager.executor.images.builder import Builder
from packager.executor.report import Reporter
from packager.imageref import check_archive_output

WHEEL = "nvidia-pytriton"
WHEEL_VERSION = "0.7.0"  # tritonserver 2.51.0 (NGC 24.10)
SUITE = "bookworm"
PYTHON = "3.11"
PACKAGES = ("python3", "python3-numpy", "python3-pip", f"libpython{PYTHON}", "curl", "ca-certificates")
RECIPE_VERSION = "1"
RECIPE_LABEL = "io.triton-packager.base.recipe"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def recipe_digest() -> str:
    text = "\n".join((RECIPE_VERSION, WHEEL, WHEEL_VERSION, SUITE, PYTHON, *PACKAGES))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "triton-packager"
    path.mkdir(parents=True, exist_ok=True)
    return path


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses, so debootstrap reaches the same registry."""
    for src in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        try:
            text = src.read_text()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+\s+main", text, re.M
        )
        if m and "security" not in m.group(1):
            return m.group(1)
    return DEFAULT_MIRROR


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        proc = process.run(cmd, timeout=timeout)
    except process.Timeout as exc:
        raise BuildError(f"{what} did not finish within {timeout:.0f}s",
                         log_tail=tuple(exc.output.strip().splitlines()[-12:]),
                         fix="check network access to the package registries") from None
    if proc.returncode != 0:
        tail = tuple((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise BuildError(f"{what} failed (exit {proc.returncode})", log_tail=tail,
                         fix="check network access to the package registries and free disk")


def _wheel(report: Reporter) -> Path:
    dest = cache_dir() / "wheels"
    found = sorted(dest.glob(f"nvidia_pytriton-{WHEEL_VERSION}-*.whl"))
    if found:
        return found[0]
    report.step(f"downloading {WHEEL}=={WHEEL_VERSION} from PyPI")
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
          "--platform", "manylinux_2_35_x86_64", "-d", str(dest), f"{WHEEL}=={WHEEL_VERSION}"],
         "pip download", timeout=900)
    found = sorted(dest.glob(f"nvidia_pytriton-{WHEEL_VERSION}-*.whl"))
    if not found:
        raise BuildError(f"pip download left no {WHEEL} wheel in {dest}")
    return found[0]


def _extract(whl: Path, rootfs: Path) -> None:
    """Lay the wheel's server out as NGC does: /opt/tritonserver and /nvidia_pytriton.libs."""
    stub = f"pytriton/tritonserver/python_backend_stubs/{PYTHON}/triton_python_backend_stub"
    with zipfile.ZipFile(whl) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.startswith("pytriton/tritonserver/python_backend_stubs/"):
                if name != stub:
                    continue
                target = rootfs / "opt/tritonserver/backends/python/triton_python_backend_stub"
            elif name.startswith("pytriton/tritonserver/"):
                target = rootfs / "opt/tritonserver" / name.removeprefix("pytriton/tritonserver/")
            elif name.startswith("nvidia_pytriton.libs/"):
                target = rootfs / name
            else:
                continue
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, 0o755 if (mode & 0o111 or name == stub) else 0o644)


def _add_user(rootfs: Path) -> None:
    with (rootfs / "etc/passwd").open("a") as fh:
        fh.write("triton-server:x:1000:1000:Triton server:/home/triton-server:/bin/sh\n")
    with (rootfs / "etc/group").open("a") as fh:
        fh.write("triton-server:x:1000:\n")
    home = rootfs / "home/triton-server"
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, 1000, 1000)


ENV = (
    "PATH=/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "TRITON_SERVER_VERSION=2.51.0",
    "TRITON_SERVER_USER=triton-server",
)
WORKDIR = "/opt/tritonserver"
CMD = ("tritonserver", "--help")


def _labels() -> dict[str, str]:
    return {RECIPE_LABEL: recipe_digest(), "io.triton-packager.base.wheel": f"{WHEEL}=={WHEEL_VERSION}"}


def existing(builder: Builder, ref: str = LOCAL_CPU_IMAGE) -> bool:
    """`builder` holds `ref`, built from this recipe (its label says so)."""
    return (builder.image_labels(ref) or {}).get(RECIPE_LABEL) == recipe_digest()


# debootstrap's MIRROR: http(s), or file:/// for a local copy.
_MIRROR_RE = re.compile(r"(?:https?|file)://[^\s'\"\\]{1,500}")


@dataclass(frozen=True)
class BaseImageRequest:
    """What `triton-packager base-image` is asked to do; the fields are the command's options,
    with the CLI's defaults. `check` refuses bad values before anything is built or written."""

    force: bool = False  # rebuild even when an image from the same recipe exists
    mirror: str | None = None  # Debian mirror for debootstrap (default: this machine's apt's)
    builder: str = registry.AUTO
    output: str | None = None  # also write oci-archive:PATH or docker-archive:PATH

    def check(self) -> Path | None:
        """The checks that need no engine; returns the image file to write, if any."""
        if self.builder not in registry.choices():
            raise InputError(f"--builder {bounded(self.builder)} is not a builder",
                             fix=f"use one of {', '.join(registry.choices())}")
        if self.mirror is not None and not _MIRROR_RE.fullmatch(self.mirror):
            raise InputError(f"--mirror {bounded(self.mirror)} is not an http(s) or file URL",
                             fix=f"give e.g. {DEFAULT_MIRROR}, or leave --mirror out")
        if self.output is None:
            return None
        _, path = check_archive_output(self.output)
        return path


def ensure_base_image(request: BaseImageRequest, report: Reporter | None = None) -> str:
    """Build the base image with the request's builder (the Docker engine: `docker import`;
    buildah: no engine needed), skipped when one from the same recipe exists; `output`
    (`oci-archive:PATH` / `docker-archive:PATH`, with a builder that writes image files) also
    writes it to that file. Returns the image's name; quiet unless given a Reporter."""
    path = request.check()
    report = report if report is not None else Reporter.create(quiet=True)
    force, mirror, builder, output = request.force, request.mirror, request.builder, request.output
    ref = LOCAL_CPU_IMAGE
    if path is not None:
        if path.exists() and not force:
            raise InputError("exists already", file=str(path),
                             fix="remove it, choose another --output, or pass --force")
        builder = registry.for_archive_output(builder)
    chosen = registry.select(builder)
    if not force and existing(chosen, ref):
        report.step(f"base image {ref} is up to date (recipe {recipe_digest()}, {chosen.name})")
        if output is not None:
            report.step(f"writing {ref} to {output}")
            chosen.export_image(ref, output, name=ref)
        return ref
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise BuildError(
            "building the CPU base image needs root and debootstrap",
            fix="run as root with Debian's debootstrap installed (apt-get install debootstrap)",
        )
    whl = _wheel(report)
    work = Path(tempfile.mkdtemp(prefix="triton-base-", dir=cache_dir()))
    try:
        rootfs = work / "rootfs"
        report.step(f"debootstrap {SUITE} ({', '.join(PACKAGES)})")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
              str(rootfs), mirror or apt_mirror()], "debootstrap", timeout=1800)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        report.step("laying out tritonserver from the wheel")
        _extract(whl, rootfs)
        _add_user(rootfs)
        tar_path = work / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            for child in sorted(rootfs.iterdir()):
                tar.add(child, arcname=child.name)
        report.step(f"importing {ref} ({chosen.name})")
        chosen.import_rootfs(tar_path, ref, env=ENV, workdir=WORKDIR, labels=_labels(), cmd=CMD)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not existing(chosen, ref):
        raise BuildError(f"the base image {ref} is missing after import")
    if output is not None:
        report.step(f"writing {ref} to {output}")
        chosen.export_image(ref, output, name=ref)
    report.step(f"base image {ref} ready")
    return ref
