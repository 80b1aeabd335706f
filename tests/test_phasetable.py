"""The phase table (packager/phasetable.py) is the one place a phase is declared: the CLI's
subcommands, the nox sessions, the make targets (phases.mk), the runner's steps and the README's
table all follow it, and a new phase is one entry and its code."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from buildfiles import RecordingSession, makefile_targets, nox_session_functions, nox_sessions
from conftest import REPO
from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

from packager import cli, phasetable
from packager.analysis import Options
from packager.executor import phases as runner
from packager.phasetable import PHASES, Phase


def test_phases_mk_is_what_the_table_generates() -> None:
    assert (REPO / "phases.mk").read_text() == phasetable.make_fragment(), (
        "regenerate it: python3 -m packager.phasetable --make > phases.mk")
    assert "include phases.mk" in (REPO / "Makefile").read_text().splitlines()


def test_the_generator_prints_the_fragment(capsys: pytest.CaptureFixture[str]) -> None:
    assert phasetable.main(["--make"]) == 0
    assert capsys.readouterr().out == phasetable.make_fragment()
    assert phasetable.main([]) == 2


def test_every_phase_is_a_subcommand_a_session_a_target_and_a_step() -> None:
    sub = next(a for a in cli._parser()._actions if a.dest == "command")
    sessions, targets = nox_sessions(), makefile_targets()
    for phase in PHASES.values():
        assert phase.name in sub.choices  # type: ignore[operator]
        assert phase.name in sessions and phase.help[1:] in sessions[phase.name]
        assert phasetable.make_target(phase) in targets
        assert runner.STEPS[phase.name].phase is phase
    assert set(runner.STEPS) == set(PHASES)


def test_every_option_group_has_its_cli_options() -> None:
    assert set(cli._OPTION_GROUPS) == set(phasetable.OPTION_GROUPS)
    for phase in PHASES.values():
        assert set(phase.options) <= set(phasetable.OPTION_GROUPS)
        assert set(phase.needs) <= set(PHASES)


def test_a_later_phase_takes_the_options_of_the_phases_it_runs() -> None:
    p = cli._parser()
    last = phasetable.PACKAGE.name
    args = p.parse_args([last, "DIR", "--base-image", "b", "--tag", "t:1"])
    assert (args.base_image, args.tag) == ("b", "t:1")
    with pytest.raises(SystemExit):
        p.parse_args([phasetable.DETECT.name, "DIR", "--base-image", "b"])


def test_a_phase_session_runs_the_phase_with_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the hand-written sessions did: OUT as --output, the base image for a phase that renders
    a Dockerfile, and a Docker engine and the local base image for one that builds."""
    monkeypatch.setenv("OUT", "o")
    monkeypatch.delenv("BASE_IMAGE", raising=False)
    from packager.basechoice import LOCAL_CPU_IMAGE

    sessions = nox_session_functions()
    runs = {}
    for name in PHASES:
        session = RecordingSession("DIR")
        sessions[name](session)
        runs[name] = session.commands
    assert runs["detect"] == [("triton-packager", "detect", "DIR", "--output", "o")]
    assert runs["dockerfile"] == [("triton-packager", "dockerfile", "DIR", "--output", "o",
                                   "--base-image", LOCAL_CPU_IMAGE)]
    assert runs["package"] == [("bash", ".ci/docker-up"), ("triton-packager", "base-image"),
                               ("triton-packager", "package", "DIR", "--output", "o",
                                "--base-image", LOCAL_CPU_IMAGE)]


def test_the_readme_table_has_a_row_per_phase() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## Phases as build targets\n", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ")]
    for phase in PHASES.values():
        target = phasetable.make_target(phase)
        assert any(f"`triton-packager {phase.name} DIR`" in r and f"`nox -s {phase.name} -- DIR`" in r
                   and f"`make {target} MODEL=DIR`" in r for r in rows), phase.name


# --- a new phase: one entry and its code -------------------------------------------------------

SUMMARY = Phase("summary", (phasetable.REPOSITORY.name,), ("summary.json",),
                "count the packaged files", "write summary.json: the files of the repository")


def _write_summary(ws: runner.Workspace, run: runner._Run) -> dict[str, str]:
    files = sorted(str(p.relative_to(ws.out)) for p in (ws.out / "model_repository").rglob("*")
                   if p.is_file())
    (ws.out / "summary.json").write_text(json.dumps(files))
    return {}


@pytest.fixture
def with_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table as a developer would extend it: one entry, and a step binding its code."""
    monkeypatch.setattr(phasetable, "PHASES", {**PHASES, SUMMARY.name: SUMMARY})
    monkeypatch.setitem(runner.STEPS, SUMMARY.name, runner.Step(
        SUMMARY, runner.Workspace._config_inputs, _write_summary))


@pytest.mark.usefixtures("with_summary")
def test_a_new_phase_is_a_subcommand_a_session_and_a_target() -> None:
    args = cli._parser().parse_args([SUMMARY.name, "DIR", "-o", "o"])
    assert args.run is cli._phase and args.command == SUMMARY.name
    assert nox_sessions()[SUMMARY.name].startswith("Write summary.json")
    assert f"{SUMMARY.name}: $(NOX) ; $(NOX) -s {SUMMARY.name} -- $(MODEL)" in \
        phasetable.make_fragment().splitlines()
    assert phasetable.chain(SUMMARY.name) == ["detect", "repository", "summary"]


@pytest.mark.usefixtures("with_summary")
def test_a_new_phase_runs_after_what_it_needs_and_is_cached(tmp_path: Path) -> None:
    model = write_tree(tmp_path / "model", {"model.py": PYTHON_MODEL,
                                            "config.pbtxt": PYTHON_CONFIG.format(name="model")})
    out = tmp_path / "out"
    assert cli.main([SUMMARY.name, str(model), "-o", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"model_repository/model/1/model.py", "model_repository/model/config.pbtxt"} <= \
        set(summary)
    again = runner.Workspace(model, out, Options()).run(SUMMARY.name)
    assert again.ran == [] and again.skipped == ["detect", "repository", "summary"]


def test_the_table_entries_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        phasetable.DETECT.name = "x"  # type: ignore[misc]
    assert all(re.fullmatch(r"[a-z][a-z_]*", name) for name in PHASES)  # a session, a target
