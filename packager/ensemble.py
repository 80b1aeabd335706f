"""Ensembles checked against the models they chain, before anything is written.

Triton checks an ensemble only when it loads it, after the image is built and pushed; these are
the same rules (server `ensemble_utils.cc`: every step's model is there, every tensor flows
from an ensemble input or exactly one step's output, no cycles, matching types and shapes),
so the mistake is reported against the config that makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packager.errors import InputError, bounded
from packager.inputs import CONFIG_NAME
from packager.modelconfig import LATEST_VERSION, EnsembleStep, ParsedConfig

Tensor = tuple[str, str, tuple[int, ...]]  # (name, datatype, dims)


@dataclass(frozen=True)
class EnsembleModel:
    """What the checks need of each packaged model."""

    name: str
    label: str  # how messages name its directory
    config: ParsedConfig
    versions: tuple[int, ...]
    served: tuple[int, ...]


def _names(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(bounded(i) for i in list(items)[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "") if items \
        else "none"


def _fail(e: EnsembleModel, message: str, fix: str) -> InputError:
    return InputError(f"{CONFIG_NAME}: {message}", file=e.label, fix=fix)


def _step(i: int, step: EnsembleStep) -> str:
    return f"ensemble_scheduling step {i + 1} ({bounded(step.model_name)})"


def _shapes_agree(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or x < 0 or y < 0 for x, y in zip(a, b, strict=True))


def check_ensembles(models: Sequence[EnsembleModel]) -> tuple[str, ...]:
    """Raise InputError on the first broken ensemble; notes for what could not be checked."""
    by_name = {m.name: m for m in models}
    notes: list[str] = []
    for e in models:
        if e.config.is_ensemble:
            notes.extend(_check_one(e, by_name))
    _check_cycles(models, by_name)
    return tuple(notes)


def _check_one(e: EnsembleModel, by_name: dict[str, EnsembleModel]) -> list[str]:
    notes: list[str] = []
    cfg = e.config
    declared: dict[str, tuple[Tensor, ParsedConfig, str]] = {
        t[0]: (t, cfg, f"ensemble input {t[0]!r}") for t in cfg.inputs}
    producers: dict[str, list[int]] = {}
    for i, step in enumerate(cfg.ensemble_steps):
        target = by_name.get(step.model_name)
        if target is None:
            raise _fail(e, f"{_step(i, step)} names model {bounded(step.model_name)}, which is "
                        f"not in the package (models: {_names(sorted(by_name))})",
                        "package that model too (another MODEL_DIR, or a directory of the "
                        "repository), or correct model_name")
        if step.model_version != LATEST_VERSION:
            if step.model_version not in target.versions:
                raise _fail(e, f"{_step(i, step)} asks for version {step.model_version}, but "
                            f"model {target.name} has version(s) "
                            f"{', '.join(map(str, target.versions))}",
                            "use model_version: -1 (the latest served) or a packaged version")
            if step.model_version not in target.served:
                raise _fail(e, f"{_step(i, step)} asks for version {step.model_version} of "
                            f"{target.name}, which its version_policy does not serve "
                            f"(served: {', '.join(map(str, target.served)) or 'none'})",
                            f"serve version {step.model_version} in {target.name}'s "
                            "version_policy, or use model_version: -1")
        tcfg = target.config
        for kind, mapping, tensors in (("input_map", step.input_map, tcfg.inputs),
                                       ("output_map", step.output_map, tcfg.outputs)):
            names = {t[0] for t in tensors}
            if not tensors:
                if mapping:
                    notes.append(f"ensemble {e.name}: step {i + 1}'s {kind} not checked: "
                                 f"{target.name}'s config declares no "
                                 f"{'inputs' if kind == 'input_map' else 'outputs'}")
                continue
            for key, _value in mapping:
                if key not in names:
                    raise _fail(
                        e, f"{_step(i, step)} {kind} maps {bounded(key)}, which model "
                        f"{target.name} does not declare (its "
                        f"{'inputs' if kind == 'input_map' else 'outputs'}: "
                        f"{_names(sorted(names))})",
                        f"use the tensor names of {target.name}'s config.pbtxt as {kind} keys")
        for key, value in step.output_map:
            producers.setdefault(value, []).append(i)
            tensor = next((t for t in tcfg.outputs if t[0] == key), None)
            if tensor is not None:
                declared.setdefault(value, (tensor, tcfg, f"{target.name} output {key!r}"))
    _check_step_cycles(e)
    ensemble_inputs = {t[0] for t in cfg.inputs}
    consumed: set[str] = set()
    for i, step in enumerate(cfg.ensemble_steps):
        target = by_name[step.model_name]
        for key, value in step.input_map:
            consumed.add(value)
            if value not in ensemble_inputs and value not in producers:
                raise _fail(e, f"{_step(i, step)} reads tensor {bounded(value)}, which is "
                            "neither an ensemble input nor produced by a step",
                            "map it from an ensemble input or from a step's output_map")
            want = next((t for t in target.config.inputs if t[0] == key), None)
            have = declared.get(value)
            if want is not None and have is not None:
                _agree(e, have, (want, target.config, f"{target.name} input {key!r}"),
                       f"{_step(i, step)} input_map {key!r} <- {value!r}")
    for produced, steps in sorted(producers.items()):
        if len(steps) > 1:
            raise _fail(e, f"tensor {bounded(produced)} is produced by steps "
                        f"{', '.join(str(s + 1) for s in steps)}; each tensor of an ensemble "
                        "has exactly one producer", "give each output_map value its own name")
        if produced in ensemble_inputs:
            raise _fail(e, f"tensor {bounded(produced)} is an ensemble input and also produced "
                        f"by step {steps[0] + 1}", "give the step's output its own name")
    unused = sorted(ensemble_inputs - consumed)
    if unused:
        raise _fail(e, f"ensemble input(s) {_names(unused)} are consumed by no step",
                    "map them in a step's input_map, or remove them from the ensemble's input")
    for t in cfg.outputs:
        if t[0] not in producers:
            raise _fail(e, f"ensemble output {bounded(t[0])} is produced by no step",
                        "map a step's output to it in that step's output_map")
        # A step whose model declares no outputs (Triton completes them at load) produces it:
        # nothing to compare with (found by a test: a KeyError, exit 1).
        have = declared.get(t[0])
        if have is not None and have[1] is not cfg:
            _agree(e, have, (t, cfg, f"ensemble output {t[0]!r}"), f"output {t[0]!r}")
    return notes


def _agree(e: EnsembleModel, a: tuple[Tensor, ParsedConfig, str],
           b: tuple[Tensor, ParsedConfig, str], where: str) -> None:
    (_, dt_a, dims_a), cfg_a, what_a = a
    (_, dt_b, dims_b), cfg_b, what_b = b
    if dt_a != dt_b:
        raise _fail(e, f"{where}: {what_a} is {dt_a} but {what_b} is {dt_b}",
                    "make the two configs declare the same data_type")
    # With max_batch_size > 0, dims leave out the batch dimension: comparable only when both
    # sides batch alike.
    if (cfg_a.max_batch_size > 0) == (cfg_b.max_batch_size > 0) and \
            not _shapes_agree(dims_a, dims_b):
        raise _fail(e, f"{where}: {what_a} has dims {list(dims_a)} but {what_b} has "
                    f"{list(dims_b)}", "make the two configs declare the same dims (-1 for any)")


def _check_step_cycles(e: EnsembleModel) -> None:
    """A step that (through others) needs its own output never runs."""
    steps = e.config.ensemble_steps
    producer = {v: i for i, s in enumerate(steps) for _k, v in s.output_map}
    needs = {i: {producer[v] for _k, v in s.input_map if v in producer}
             for i, s in enumerate(steps)}
    cycle = _find_cycle(needs)
    if cycle:
        raise _fail(e, "ensemble_scheduling steps form a cycle: "
                    + " -> ".join(f"step {c + 1}" for c in cycle),
                    "break the cycle: no step may need, through other steps, its own output")


def _check_cycles(models: Sequence[EnsembleModel], by_name: dict[str, EnsembleModel]) -> None:
    """Ensembles that contain each other."""
    names = sorted(by_name)
    index = {n: i for i, n in enumerate(names)}
    needs = {index[m.name]: {index[s.model_name] for s in m.config.ensemble_steps
                             if s.model_name in index}
             for m in models if m.config.is_ensemble}
    cycle = _find_cycle(needs)
    if cycle:
        first = by_name[names[cycle[0]]]
        raise _fail(first, "ensembles contain each other: "
                    + " -> ".join(names[c] for c in cycle),
                    "break the cycle: an ensemble cannot run itself through another")


def _find_cycle(needs: dict[int, set[int]]) -> list[int]:
    """A cycle in the graph (as a closed path), or []: iterative DFS, no recursion limit."""
    state: dict[int, int] = {}  # 1 on the path, 2 done
    for start in sorted(needs):
        if state.get(start):
            continue
        path: list[int] = [start]
        stack = [iter(sorted(needs.get(start, ())))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(needs.get(nxt, ()))))
    return []
