"""The packager's own image (deploy/image/build.py, `make packager-image`) against the real
Docker engine: built (or found up to date) once per session, then run. It answers
`python -m packager --version` with packager/__init__.py's version from its venv, a rebuild with
nothing changed is skipped, no pip or apt cache is left in it, and its buildah builds an image
(a RUN step included) from a docker-archive in a privileged container whose /var/lib/containers
is a volume, as the Tekton package step does, without a Docker socket.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import REPO
from e2e import privileged_flags
from scripts import load_script

pytestmark = pytest.mark.docker

CONTAINER_TIMEOUT = 300


@pytest.fixture(scope="session")
def image_build() -> ModuleType:
    return load_script("deploy/image/build.py", "packager_image_build")


@pytest.fixture(scope="session")
def packager_image(image_build: ModuleType) -> Any:
    """The image, built once per session (seconds when it is up to date, minutes when cold)."""
    return image_build.build()


def _docker(*args: str, timeout: float = CONTAINER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _run_in(image: str, *cmd: str, options: tuple[str, ...] = ()) -> str:
    proc = _docker("run", "--rm", "--network", "none", *options, image, *cmd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _source_version() -> str:
    m = re.search(r'^__version__ = "([^"]+)"$', (REPO / "packager/__init__.py").read_text(), re.M)
    assert m
    return m.group(1)


def test_the_image_is_tagged_latest_and_version_with_its_labels(image_build: ModuleType,
                                                               packager_image: Any) -> None:
    version = _source_version()
    assert packager_image.tags == ("triton-packager:latest", f"triton-packager:{version}")
    for tag in packager_image.tags:
        found = _docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
        assert found == packager_image.image_id
    labels = image_build.client().images.get(packager_image.image_id).labels
    assert labels["org.opencontainers.image.version"] == version
    assert labels[image_build.RECIPE_LABEL] == packager_image.recipe


def test_python_is_the_venv_and_prints_the_packagers_version(packager_image: Any) -> None:
    image = packager_image.tags[0]
    assert _run_in(image, "python", "-m", "packager", "--version").strip() == \
        f"triton-packager {_source_version()}"
    where = _run_in(image, "python", "-c", "import sys, numpy, packager; "
                    "print(sys.prefix, numpy.__file__, packager.__file__, sep='\\n')").split()
    assert where[0] == "/opt/triton-packager"
    assert where[1].startswith("/usr/lib/python3/dist-packages/")  # Debian's numpy
    assert where[2].startswith("/opt/triton-packager/lib/python3.11/site-packages/")


def test_an_unchanged_rebuild_is_skipped(image_build: ModuleType, packager_image: Any) -> None:
    started = time.monotonic()
    again = image_build.build()
    assert again.skipped
    assert again.image_id == packager_image.image_id
    assert time.monotonic() - started < 10


_FIND_CACHES = r"""
import os
bad = []
for top in ("/root", "/home", "/tmp", "/var/tmp", "/var/cache", "/var/lib/apt", "/opt", "/usr"):
    for root, dirs, files in os.walk(top):
        if os.path.basename(root) == ".cache" or root.endswith("/var/cache/pip"):
            bad.append(root)
        for f in files:
            p = os.path.join(root, f)
            if f.endswith((".deb", ".whl")) and "/python-wheels/" not in p:
                bad.append(p)
            if root.startswith(("/var/cache/apt", "/var/lib/apt/lists")):
                bad.append(p)
print("\n".join(bad))
"""


def test_no_pip_or_apt_cache_is_left_in_the_image(packager_image: Any) -> None:
    # /usr/share/python-wheels: Debian's python3-venv wheels, which `python -m venv` installs from.
    assert _run_in(packager_image.tags[0], "python", "-c", _FIND_CACHES).strip() == ""


def test_buildah_builds_in_the_image_without_a_docker_socket(
        image_build: ModuleType, packager_image: Any, tmp_path: Path) -> None:
    # The base: the image's own Debian root filesystem (already on the engine), as an archive.
    base = f"{image_build.ROOTFS_REPO}:{image_build.rootfs_recipe()}"
    archive = tmp_path / "base.tar"
    saved = _docker("save", "-o", str(archive), base)
    assert saved.returncode == 0, saved.stderr
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {base}\nRUN echo built-by-buildah > /proof && python3 -c 'import numpy'\n")
    storage = tmp_path / "containers"
    storage.mkdir()
    script = (
        "set -e\n"
        "test ! -e /var/run/docker.sock\n"
        "buildah --version\n"
        "buildah info --format 'driver={{.store.GraphDriverName}}'; echo\n"
        "buildah pull -q docker-archive:/base.tar >/dev/null\n"
        "buildah build --isolation chroot --layers -q -t localhost/probe:1 /context >/dev/null\n"
        "ctr=$(buildah from localhost/probe:1)\n"
        "buildah run --isolation chroot \"$ctr\" cat /proof\n"
    )
    out = _run_in(packager_image.tags[0], "bash", "-c", script, options=(
        *privileged_flags(), "-v", f"{storage}:/var/lib/containers", "-v", f"{archive}:/base.tar:ro",
        "-v", f"{context}:/context:ro"))
    assert out.startswith("buildah version ")
    assert f"driver={image_build.BUILDAH_DRIVER}" in out
    assert out.rstrip().endswith("built-by-buildah")
    # The layers landed in the volume: the Tekton push step (another pod) reads them there.
    assert (storage / "storage" / image_build.BUILDAH_DRIVER).is_dir()
