from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


import shutil  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:
    import docker

    from packager.executor.images.buildah import Storage


@pytest.fixture(scope="session")
def python_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python example, trained once per session by the real trainer (numpy only)."""
    from packager.executor.report import Reporter
    from packager.executor.runs.trainer import TrainRequest, train

    return train(TrainRequest(EXAMPLES / "python", tmp_path_factory.mktemp("py") / "add-sub"),
                 Reporter("quiet"))


@pytest.fixture
def python_model(python_example: Path, tmp_path: Path) -> Path:
    """A private copy of the trained Python example, free to modify."""
    return Path(shutil.copytree(python_example, tmp_path / "model"))


# --- a private buildah storage, shared by the buildah and push tests ---------------------------
def _overlay_works(root: Path) -> bool:
    import subprocess

    from packager.executor.images.buildah import Storage

    probe = Storage("overlay", root / "probe", root / "probe-run")
    cmd = ["buildah", *probe.flags(), "from", "--name", "overlay-probe", "scratch"]
    ok = subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
    subprocess.run(["buildah", *probe.flags(), "rm", "--all"], capture_output=True, timeout=120)
    shutil.rmtree(root / "probe", ignore_errors=True)
    return ok


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """A private buildah storage for the session: overlay where the kernel allows it, else vfs."""
    import subprocess

    from packager.executor.images.buildah import Storage

    # The engine tier's setup (.ci/docker-up) installs buildah: its absence is a real failure.
    assert shutil.which("buildah"), "buildah is not installed: run .ci/docker-up"
    root = tmp_path_factory.mktemp("buildah")
    s = Storage("overlay" if _overlay_works(root) else "vfs", root / "root", root / "run")
    yield s
    subprocess.run(["buildah", *s.flags(), "rm", "--all"], capture_output=True, timeout=300)
    subprocess.run(["buildah", *s.flags(), "rmi", "--all", "--force"], capture_output=True,
                   timeout=300)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def buildah_env(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
    """The session's buildah storage, selected through the environment as a user would."""
    from packager.executor.images import buildah as bb

    monkeypatch.setenv(bb.ENV_DRIVER, storage.driver or "vfs")
    monkeypatch.setenv(bb.ENV_ROOT, str(storage.root))
    monkeypatch.setenv(bb.ENV_RUNROOT, str(storage.runroot))
    return storage


# --- every registered builder ------------------------------------------------------------------
# What a builder needs from the test session to run here (a fixture's name), if anything.
_BUILDER_SETUP = {"buildah": "buildah_env"}


def _builder_names() -> tuple[str, ...]:
    from packager.executor.images.registry import names

    return names()


@pytest.fixture(params=_builder_names())
def builder(request: pytest.FixtureRequest) -> str:
    """Each registered builder's name in turn (`--builder NAME`), set up to run here: the
    engine-facing tests that take this fixture run against every builder."""
    setup = _BUILDER_SETUP.get(request.param)
    if setup is not None:
        request.getfixturevalue(setup)
    return str(request.param)


# --- the Docker engine -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    import docker

    from packager.basechoice import LOCAL_CPU_IMAGE

    c = docker.from_env()
    c.ping()  # the suite needs the engine; .ci/run starts it (a failure here is a real failure)
    assert c.images.get(LOCAL_CPU_IMAGE), "run `triton-packager base-image` first"
    return c


@pytest.fixture
def images(client: docker.DockerClient) -> Iterator[list[str]]:
    """Image references a test created: removed after it."""
    from e2e import remove_image

    created: list[str] = []
    yield created
    for ref in created:
        remove_image(client, ref)
