"""Every command README.md shows a user is checked here, so a README that drifts fails CI.

`make demo` once failed on every fresh clone (it read a result.json layout two releases old) and
no test noticed. Each command in a ```bash block or a table cell of README.md is one of:

- a `make` target: it must exist in the Makefile (`make -n` with the README's variables);
- a `nox -s` session: it must be defined in noxfile.py;
- a `triton-packager` command: the CLI's own parser must accept it exactly as written;
- a `kubectl` command: every file it names must exist;
- the quick start's `docker run` + `curl`, and `make demo`'s script: run for real against the
  packaged example (Docker tier, below).

`make package` and `make test` themselves are what `.ci/run` runs. A command of any other
kind fails `test_every_readme_command_is_checked` until a check for it is added here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from buildfiles import makefile_targets, nox_sessions
from conftest import EXAMPLES, REPO

README = REPO / "README.md"
_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
_CELL = re.compile(r"`((?:make|nox -s|triton-packager) [^`]*)`")
_KINDS = ("make ", "nox -s ", "triton-packager ", "kubectl ", "pip install ", "docker run ", "curl ",
          "docker tag ")


def readme_commands(text: str | None = None) -> list[str]:
    """The commands of every ```bash block (continuation lines joined, comments dropped) and
    every `make`/`nox -s`/`triton-packager` code span of a table row."""
    text = README.read_text() if text is None else text
    commands: list[str] = []
    for block in _BLOCK.findall(text):
        line = ""
        for raw in block.splitlines():
            line = f"{line} {raw.strip()}".strip()
            if line.endswith("\\"):
                line = line[:-1].rstrip()
                continue
            command = re.sub(r"(^|\s+)#.*$", "", line).strip()
            if command:
                commands.append(command)
            line = ""
    for row in (r for r in text.splitlines() if r.startswith("|")):
        commands += [c.strip() for c in _CELL.findall(row)]
    return commands


def _makefile_targets() -> set[str]:
    return makefile_targets()  # phases.mk, which the Makefile includes, too


def _nox_sessions() -> set[str]:
    return set(nox_sessions())  # the phase sessions the noxfile makes in a loop, too


def _words(command: str) -> list[str]:
    # A README command may redirect its output (`> my-config.pbtxt`): the shell's, not ours.
    return shlex.split(command.split(" > ")[0])


def test_the_readme_shows_the_newcomer_commands() -> None:
    commands = readme_commands()
    assert commands[:2] == ["make package", "make test"], commands[:3]
    ci = (REPO / ".ci" / "run").read_text().split()
    assert "package" in ci and "test" in ci
    assert len(commands) > 20  # the extractor still finds the README's blocks and tables


def test_the_extractor_reads_blocks_continuations_and_tables() -> None:
    text = ("```bash\nmake a   # note\nfoo --x \\\n    --y 1\n# only a comment\n```\n"
            "| a | `triton-packager detect DIR` | `nox -s detect -- DIR` | `make detect MODEL=DIR` |\n")
    assert readme_commands(text) == ["make a", "foo --x --y 1", "triton-packager detect DIR",
                                     "nox -s detect -- DIR", "make detect MODEL=DIR"]


def test_every_readme_command_is_checked() -> None:
    unknown = [c for c in readme_commands() if not c.startswith(_KINDS)]
    assert not unknown, f"add a check for these README commands to {__file__}: {unknown}"


@pytest.mark.parametrize("command", sorted({c for c in readme_commands() if c.startswith("make ")}))
def test_readme_make_targets_exist(command: str) -> None:
    words = _words(command)[1:]
    targets = [w for w in words if "=" not in w]
    assert targets and set(targets) <= _makefile_targets(), command
    # The variables as the README sets them; -n prints the recipes without running them.
    done = subprocess.run(["make", "-n", "-C", str(REPO), *words], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command",
                         sorted({c for c in readme_commands() if c.startswith("nox -s ")}))
def test_readme_nox_sessions_exist(command: str) -> None:
    assert _words(command)[2] in _nox_sessions(), command


@pytest.mark.parametrize("command",
                         sorted({c for c in readme_commands() if c.startswith("triton-packager ")}))
def test_readme_cli_commands_parse(command: str) -> None:
    from packager import cli

    words = [w.strip("[]") for w in _words(command)[1:]]
    # A table cell may show an optional part in brackets (`[--builder buildah --output F]`).
    try:
        args = cli._parser().parse_args(words)
    except SystemExit as exc:  # argparse's way of saying "no"
        pytest.fail(f"the CLI refuses the README's `{command}` (exit {exc.code})")
    assert args.command == words[0]


@pytest.mark.parametrize("command",
                         sorted({c for c in readme_commands() if c.startswith("kubectl ")}))
def test_readme_kubectl_commands_name_files_that_exist(command: str) -> None:
    words = _words(command)
    files = [words[i + 1] for i, w in enumerate(words) if w == "-f"]
    files += [w.split("=", 1)[1] for w in words if w.startswith("--from-file=")]
    for name in files:
        if name.startswith(".dockerconfigjson=") or name.endswith("auth.json"):
            continue  # the user's own credentials file
        assert (REPO / name.split("=")[-1]).exists(), f"{command}: {name} does not exist"


def test_readme_pip_install_installs_the_cli() -> None:
    assert "pip install -e ." in readme_commands()
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^triton-packager = "packager\.cli:main"$', text, re.M), "console script"


# --- run for real: the quick start's request and `make demo`'s script ---------------------------


@pytest.mark.docker
@pytest.mark.serving
def test_quick_start_request_and_make_demo_script(tmp_path: Path, images, python_model: Path) -> None:
    """The quick start's `curl` body, sent to the packaged example, and `make demo`'s script,
    run on an output as `make demo` leaves it."""
    import urllib.request

    from e2e import package

    from packager.executor.container import serve

    commands = readme_commands()
    curl = next(c for c in commands if c.startswith("curl "))
    body = _words(curl)[_words(curl).index("-d") + 1]
    path = next(w for w in _words(curl) if w.startswith("localhost:8000/"))[len("localhost:8000"):]
    run = next(c for c in commands if c.startswith("docker run "))
    assert "--shm-size=256m" in run and 'open("out/result.json"))["image"]' in run

    (python_model / "scale.json").write_text('{"scale": 3.0}')
    out = tmp_path / "out"
    outcome, _ = package(python_model, out)
    assert outcome.result is not None
    images.append(outcome.result.image)
    assert json.loads((out / "result.json").read_text())["image"] == outcome.result.image

    with serve(outcome.result.image) as running:
        request = urllib.request.Request(f"http://{running.http_url}{path}", data=body.encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = {o["name"]: o["data"] for o in json.load(response)["outputs"]}
    np.testing.assert_allclose(answer["OUTPUT0"], [(x + 0.5) * 3.0 for x in (1, 2, 3, 4)])
    np.testing.assert_allclose(answer["OUTPUT1"], [(x - 0.5) * 3.0 for x in (1, 2, 3, 4)])

    # `make demo` ends with exactly this command (see noxfile.py's demo session).
    demo = subprocess.run([sys.executable, str(EXAMPLES / "python" / "demo.py"), "--output", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "is serving add-sub" in demo.stdout
    assert "OUTPUT0 = [4.5, 7.5, 10.5, 13.5]" in demo.stdout, demo.stdout
