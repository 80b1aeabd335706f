from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def python_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python example, trained once per session by the real trainer (numpy only)."""
    from packager.executor.report import Reporter
    from packager.executor.trainer import TrainRequest, train

    return train(TrainRequest(EXAMPLES / "python", tmp_path_factory.mktemp("py") / "add-sub"),
                 Reporter("quiet"))


@pytest.fixture
def python_model(python_example: Path, tmp_path: Path) -> Path:
    """A private copy of the trained Python example, free to modify."""
    return Path(shutil.copytree(python_example, tmp_path / "model"))
