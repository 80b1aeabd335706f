"""Build targets and developer tasks. Each packager phase is a session, made from the phase table
(packager/phasetable.py):

    nox -s detect|repository|dockerfile|package -- MODEL_DIR [options]
    nox -s config -- MODEL_DIR [--max-batch-size N ...]   (prints config.pbtxt, writes nothing)
    nox -s base_image | verify | push | demo
    nox -s unit | tests | lint | snapshots   (`nox` alone: lint + unit, no Docker needed)
    nox -s fuzz [-- SECONDS [TARGET ...]]    (atheris over the model readers, 60 s per target)
"""

from __future__ import annotations

import os
import sys

import nox

# The packager's own constants and phase table, read from its source (both modules import only
# the standard library), so that nox and the code cannot disagree on the local base image's name
# or on the phases.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from packager.basechoice import LOCAL_CPU_IMAGE
from packager.phasetable import DOCKERFILE_OPTIONS, PHASES, Phase, builds_image, option_groups

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "unit"]

LOCAL_BASE = LOCAL_CPU_IMAGE
EXAMPLE_PROJECT = "examples/python"
OUT = os.environ.get("OUT") or "out"
# Trained models live outside OUT: an input inside the package output is refused.
TRAINED = os.environ.get("TRAINED") or "trained"
BASE_IMAGE = os.environ.get("BASE_IMAGE") or LOCAL_BASE


def _install(session: nox.Session, extras: str = "") -> None:
    session.install("-e", f".{extras}")


def _docker(session: nox.Session) -> None:
    session.run("bash", ".ci/docker-up", external=True)


def _base_image(session: nox.Session) -> None:
    if BASE_IMAGE == LOCAL_BASE:
        session.run("triton-packager", "base-image")


def _trained(project: str) -> str:
    return f"{TRAINED}/{os.path.basename(os.path.normpath(project))}"


def _train(session: nox.Session, project: str, *extra: str) -> str:
    target = _trained(project)
    args = list(extra)
    if "--target" not in args:
        args += ["--target", target]
    else:
        target = args[args.index("--target") + 1]
    if "--env-manager" not in args:
        args += ["--env-manager", "virtualenv"]
    session.run("triton-packager", "train", project, *args)
    return target


def _phase(session: nox.Session, phase: Phase) -> None:
    _install(session)
    # With no arguments, the bundled example goes from MLproject repo to image.
    args = list(session.posargs) or [_train(session, EXAMPLE_PROJECT)]
    if "-o" not in args and "--output" not in args:
        args += ["--output", OUT]
    if DOCKERFILE_OPTIONS in option_groups(phase.name) and "--base-image" not in args:
        args += ["--base-image", BASE_IMAGE]
    if builds_image(phase.name):
        _docker(session)
        _base_image(session)
    session.run("triton-packager", phase.name, *args)


def _phase_session(phase: Phase) -> None:
    """Register `nox -s NAME` for one phase of the table; `nox -l` lists its help."""

    def run(session: nox.Session) -> None:
        _phase(session, phase)

    run.__name__ = run.__qualname__ = phase.name
    run.__doc__ = (f"{phase.help[:1].upper()}{phase.help[1:]} in OUT; nox -s {phase.name} -- "
                   "MODEL_DIR [options] (default: the Python example, trained).")
    nox.session(name=phase.name)(run)


for _phase_entry in PHASES.values():
    _phase_session(_phase_entry)


@nox.session
def config(session: nox.Session) -> None:
    """Print the config.pbtxt that would be packaged (given or generated); writes nothing."""
    _install(session)
    args = list(session.posargs) or [_train(session, EXAMPLE_PROJECT)]
    session.run("triton-packager", "config", *args)


@nox.session
def train(session: nox.Session) -> None:
    """Train an MLproject repo: nox -s train -- PROJECT [--target DIR] (default: trained/NAME)."""
    _install(session)
    args = list(session.posargs) or [EXAMPLE_PROJECT]
    _train(session, args[0], *args[1:])


@nox.session
def setup(session: nox.Session) -> None:
    """Unpack a training artifact: nox -s setup -- ARTIFACT --output DIR."""
    _install(session)
    session.run("triton-packager", "setup", *session.posargs)


@nox.session(name="base_image")
def base_image(session: nox.Session) -> None:
    """Build the local CPU Triton base image (skipped when it is up to date)."""
    _install(session)
    _docker(session)
    session.run("triton-packager", "base-image", *session.posargs)


@nox.session
def demo_runtime(session: nox.Session) -> None:
    """Train the ONNX example, serve it on the local CPU base with --serve-with runtime, and
    verify it: readiness, one request, and the samples its training wrote."""
    _install(session)
    _docker(session)
    _base_image(session)
    out = f"{OUT}/onnx-runtime"
    # The builder stage pip-installs onnxruntime: behind a TLS-intercepting proxy it needs the
    # system's CA bundle (harmless elsewhere; it stays in the builder stage).
    ca = "/etc/ssl/certs/ca-certificates.crt"
    session.run("triton-packager", "package", _train(session, "examples/onnx"), "--output", out,
                "--base-image", LOCAL_BASE, "--serve-with", "runtime", "--dynamic-batching",
                *(["--ca-bundle", ca] if os.path.isfile(ca) else []))
    session.run("triton-packager", "verify", "--output", out)


@nox.session
def verify(session: nox.Session) -> None:
    """Run the image named in OUT/result.json and send it one inference request."""
    _install(session)
    _docker(session)
    session.run("triton-packager", "verify", "--output", OUT, *session.posargs)


@nox.session
def push(session: nox.Session) -> None:
    """Push the image named in OUT/result.json (pass --registry HOST[:PORT])."""
    _install(session)
    _docker(session)
    session.run("triton-packager", "push", "--output", OUT, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Package the Python example, run it, and print an inference."""
    _install(session)
    _docker(session)
    _base_image(session)
    session.run("triton-packager", "package", _train(session, EXAMPLE_PROJECT), "--output", OUT,
                "--base-image", BASE_IMAGE)
    session.run("python", "examples/python/demo.py", "--output", OUT)


@nox.session
def unit(session: nox.Session) -> None:
    """The fast tier: every test that needs no Docker engine (seconds, runs anywhere)."""
    _install(session, "[test]")
    session.run("pytest", "-m", "not docker and not serving", *(session.posargs or ["-q"]))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, real Docker engine and real Triton server included."""
    # [examples]: the frameworks the example trainings use (torch CPU, tensorflow-cpu, ...).
    _install(session, "[test,examples]")
    _docker(session)
    session.run("triton-packager", "base-image")
    session.run("pytest", *(session.posargs or ["-q"]))


FUZZ_TARGETS = ("onnx", "savedmodel", "openvino", "pickle", "torchscript", "zip")


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """Coverage-guided fuzzing of the model readers with atheris, 60 s per target (bounded):
    nox -s fuzz [-- SECONDS [TARGET ...]]. Finds grow tests/fuzz/corpus/, which `unit` replays;
    a crash is written as out/fuzz/crash-* and fails the session."""
    _install(session, "[test]")
    session.install("atheris>=2.3")
    args = list(session.posargs)
    seconds = args.pop(0) if args and args[0].isdigit() else "60"
    os.makedirs(f"{OUT}/fuzz", exist_ok=True)
    for target in args or FUZZ_TARGETS:
        corpus, scratch = f"tests/fuzz/corpus/{target}", f"{OUT}/fuzz/corpus-{target}"
        os.makedirs(corpus, exist_ok=True)
        os.makedirs(scratch, exist_ok=True)
        # New inputs go to the scratch directory (the first one given); -max_len keeps them
        # small; -rss_limit_mb is the readers' memory budget as the fuzzer checks it (an input
        # above it is a crash), -timeout the time budget of one input.
        session.run("python", "tests/fuzz/run.py", target, scratch, corpus,
                    f"-max_total_time={seconds}", "-max_len=4096", "-rss_limit_mb=1024",
                    "-timeout=10", f"-artifact_prefix={OUT}/fuzz/{target}-",
                    "-print_final_stats=1")
        # Only finds that add coverage are kept in the committed corpus (libFuzzer's merge).
        session.run("python", "tests/fuzz/run.py", target, "-merge=1", corpus, scratch)


@nox.session(default=False)
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the refusal checks against their unit tests; not in `make
    test`. Modules and tests: [tool.mutmut] in pyproject.toml; results: tests/mutation/."""
    _install(session, "[test]")
    session.install("mutmut==3.8.1")
    # mutmut copies the package into mutants/ and runs pytest there; a stale copy would test
    # mutants of code that has since changed.
    session.run("rm", "-rf", "mutants", external=True)
    session.run("mutmut", "run", "--max-children", os.environ.get("MUTATION_JOBS", "2"),
                *session.posargs)
    session.run("mutmut", "results", "--all", "true", success_codes=[0, 1])


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and memory against a hand-written Dockerfile in the same run (a phase, not a test)."""
    _install(session, "[test]")  # onnx for the external-data model; tests/e2e.py's registry
    _docker(session)
    _base_image(session)
    session.run("python", "benchmarks/bench_package.py", *session.posargs)


@nox.session
def snapshots(session: nox.Session) -> None:
    """The only way snapshots change: regenerate, then review `git diff tests/__snapshots__`."""
    # [examples]: test_examples pins what the trained examples generate.
    _install(session, "[test,examples]")
    session.run("pytest", "tests/test_snapshots.py", "tests/test_examples.py", "-m",
                "not docker and not serving", "--snapshot-update", "-q")
    session.log("review the snapshot diff with `git diff tests/__snapshots__` before committing")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    _install(session, "[dev]")
    session.run("ruff", "check", "packager", "tests", "noxfile.py", "examples", "benchmarks", "deploy")
    session.run("mypy")


@nox.session(name="packager_image")
def packager_image(session: nox.Session) -> None:
    """Build the packager's own image, triton-packager:latest and :<version> (the one every
    Tekton step runs; skipped when up to date, `-- --force` rebuilds). See deploy/image/build.py."""
    _install(session)
    _docker(session)
    session.run("python", "deploy/image/build.py", *session.posargs)


@nox.session(name="tekton_check")
def tekton_check(session: nox.Session) -> None:
    """What a cluster would refuse in deploy/tekton (offline): `-- --storage-class NAME` for the
    classes your cluster has. See deploy/tekton/check.py."""
    _install(session)
    session.run("python", "deploy/tekton/check.py", *(session.posargs or ["deploy/tekton"]))
