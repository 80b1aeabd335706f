"""Every input in tests/fuzz/corpus/<target>/ -- seeds, and what `nox -s fuzz` found -- run
through its fuzz target: read, or refused with an InputError naming the file, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.targets import TARGETS

CORPUS = Path(__file__).resolve().parent / "fuzz" / "corpus"
CASES = sorted((d.name, f) for d in CORPUS.iterdir() if d.is_dir() for f in d.iterdir()
               if f.is_file())


def test_every_target_has_a_corpus() -> None:
    assert {name for name, _ in CASES} == set(TARGETS)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_corpus_replays(target: str) -> None:
    run = TARGETS[target]
    for name, path in CASES:
        if name == target:
            run(path.read_bytes())
