"""The phases of `package`, in one table: what each needs and writes, and how it is offered as a
CLI subcommand, a nox session and a make target.

The CLI builds one subcommand per entry, noxfile.py one session and `phases.mk` (included by the
Makefile, generated from this table: `python3 -m packager.phasetable --make > phases.mk`) one
target; the executor's runner (`packager/executor/phases.py`) binds each entry to its inputs and
its action. A new phase is one entry here and its code there.

Standard library only: noxfile.py imports this module from the source tree, before (and without)
installing the packager's dependencies.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The CLI option groups a phase adds to its own subcommand and to every later phase's.
DOCKERFILE_OPTIONS = "dockerfile-options"  # base image, healthcheck, labels, templates, environments
BUILD_OPTIONS = "build-options"  # image name, tag, builder, platform, pull, layer size
OPTION_GROUPS = (DOCKERFILE_OPTIONS, BUILD_OPTIONS)

RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Phase:
    name: str  # the CLI subcommand, the nox session and the make target
    needs: tuple[str, ...]  # phases that run first
    outputs: tuple[str, ...]  # paths relative to the output directory
    doc: str  # the progress line while it runs ("detect: ...")
    help: str  # the subcommand's help, the nox session's docstring
    options: tuple[str, ...] = ()  # OPTION_GROUPS it adds
    # It builds an image: it needs an image engine and the base image (nox starts Docker and
    # builds the local base first), and is redone when the image is gone.
    engine: bool = False


DETECT = Phase("detect", (), ("detect.json",), "detect the backend, read the manifest",
               "detect the backend and read the manifest (writes detect.json)")
REPOSITORY = Phase("repository", (DETECT.name,), ("model_repository",),
                   "build the Triton model tree",
                   "write the Triton model repository tree (model_repository/)")
DOCKERFILE = Phase("dockerfile", (REPOSITORY.name,), ("context",),
                   "render the Dockerfile and context",
                   "render the Dockerfile and build context (context/)",
                   options=(DOCKERFILE_OPTIONS,))
PACKAGE = Phase("package", (DOCKERFILE.name,), (RESULT_FILE,),
                "build the image, write result.json",
                "run every phase: build the image and write result.json",
                options=(BUILD_OPTIONS,), engine=True)

PHASES: Mapping[str, Phase] = {p.name: p for p in (DETECT, REPOSITORY, DOCKERFILE, PACKAGE)}


def chain(target: str, phases: Mapping[str, Phase] | None = None) -> list[str]:
    """`target` and the phases it needs, each once, dependencies first."""
    table = PHASES if phases is None else phases
    order: list[str] = []

    def visit(name: str) -> None:
        for dep in table[name].needs:
            visit(dep)
        if name not in order:
            order.append(name)

    visit(target)
    return order


def option_groups(target: str, phases: Mapping[str, Phase] | None = None) -> tuple[str, ...]:
    """The option groups `target`'s subcommand takes: those of every phase it runs."""
    table = PHASES if phases is None else phases
    return tuple(g for name in chain(target, table) for g in table[name].options)


def builds_image(target: str, phases: Mapping[str, Phase] | None = None) -> bool:
    table = PHASES if phases is None else phases
    return any(table[name].engine for name in chain(target, table))


def make_target(phase: Phase) -> str:
    return phase.name.replace("_", "-")


def make_fragment(phases: Mapping[str, Phase] | None = None) -> str:
    """phases.mk: one make target per phase, each a one-line alias of its nox session. MODEL:
    the model directories (none: the session trains and packages the bundled example)."""
    table = PHASES if phases is None else phases
    lines = [
        "# Generated from packager/phasetable.py by `python3 -m packager.phasetable --make > "
        "phases.mk`;",
        "# do not edit (tests/test_phasetable.py fails when this file is not what the table "
        "generates).",
        ".PHONY: " + " ".join(make_target(p) for p in table.values()),
        *(f"{make_target(p)}: $(NOX) ; $(NOX) -s {p.name} -- $(MODEL)" for p in table.values()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--make"]:
        print("usage: python3 -m packager.phasetable --make > phases.mk", file=sys.stderr)
        return 2
    sys.stdout.write(make_fragment())
    return 0


if __name__ == "__main__":
    sys.exit(main())
