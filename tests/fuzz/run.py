"""Coverage-guided fuzzing of one reader with atheris (libFuzzer for Python):

    python tests/fuzz/run.py TARGET CORPUS_DIR [libFuzzer options, e.g. -max_total_time=60]

TARGET is a name in targets.TARGETS. libFuzzer adds what it finds to CORPUS_DIR and writes a
crashing input as crash-* (see -artifact_prefix); `nox -s fuzz` runs every target for a bounded
time over tests/fuzz/corpus/TARGET, which the unit tests replay.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["packager"]):
    from targets import TARGETS

    import packager.executor.reader  # noqa: F401  (instrumented for the zip target)


def main() -> None:
    target = TARGETS[sys.argv[1]]
    # libFuzzer's -merge reruns argv[0] through the shell: give it the interpreter, this
    # script and the target, so it needs no executable bit and finds atheris.
    me = f"{sys.executable} {Path(__file__).resolve()} {sys.argv[1]}"
    atheris.Setup([me, *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
