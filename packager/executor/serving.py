"""Before anything is written: `--serve-with runtime` applied to the analysed package, the model
files loaded by their runtime on this machine (where it is installed), and every samples.npz
checked against its model's config. Afterwards (verify): the samples sent and compared."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.analysis import Package
from packager.errors import InputError, VerifyError, bounded
from packager.executor.process import Timeout, run
from packager.executor.report import Reporter
from packager.limits import SAMPLES_MAX_BYTES, SAMPLES_NAME
from packager.modelconfig import ParsedConfig
from packager.runtime import RUNTIMES, Adapted, digest_part, serve_with_runtime

LOAD_TIMEOUT = 600.0
_NOT_INSTALLED = 17
_LOAD_SCRIPT = textwrap.dedent("""\
    import importlib.util, os, sys
    key, path = sys.argv[1], sys.argv[2]
    module = {"onnx": "onnxruntime", "openvino": "openvino", "tf_savedmodel": "tensorflow"}[key]
    if importlib.util.find_spec(module) is None:
        sys.exit(NOT_INSTALLED)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if key == "onnx":
            import onnxruntime
            if os.path.isdir(path):
                path = os.path.join(path, "model.onnx")
            onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        elif key == "openvino":
            import openvino
            core = openvino.Core()
            core.compile_model(core.read_model(path), "CPU")
        else:
            import tensorflow as tf
            tf.saved_model.load(path, tags=["serve"]).signatures["serving_default"]
    except BaseException as exc:
        text = (f"{type(exc).__name__}: {exc}").strip().splitlines()
        print(text[0] if text else type(exc).__name__, file=sys.stderr)
        sys.exit(1)
    """).replace("NOT_INSTALLED", str(_NOT_INSTALLED))


@dataclass(frozen=True)
class Prepared:
    package: Package
    adapted: tuple[Adapted, ...]
    digest: tuple[str, ...]  # what the phases' digests add (nothing without --serve-with runtime)


def prepare(package: Package, serve_with: str, roots: Sequence[Path], report: Reporter,
            template_dirs: tuple[str, ...] = ()) -> Prepared:
    """The package to build; raises InputError (exit 2) before anything is written."""
    adapted: tuple[Adapted, ...] = ()
    digest: tuple[str, ...] = ()
    if serve_with == "runtime":
        package, adapted = serve_with_runtime(package, template_dirs)
        digest = (digest_part(package),)
        for a in adapted:
            check_loads(a, roots, report)
    check_samples(package, roots)
    return Prepared(package, adapted, digest)


def check_loads(adapted: Adapted, roots: Sequence[Path], report: Reporter) -> None:
    """Load each version's model file with its runtime here, when the runtime is installed."""
    runtime = RUNTIMES[adapted.backend_key]
    for index, source in adapted.sources:
        path = roots[index] / source
        try:
            done = run([sys.executable, "-c", _LOAD_SCRIPT, adapted.backend_key, str(path)],
                       timeout=LOAD_TIMEOUT)
        except Timeout:
            report.warn(f"model {adapted.model_name}: loading {source} with {runtime.package} "
                        f"took longer than {LOAD_TIMEOUT:.0f}s here; not checked")
            return
        if done.returncode == _NOT_INSTALLED:
            report.info(f"model {adapted.model_name}: {runtime.package} is not installed here, so "
                        f"{source} was checked by the packager's reader only")
            return
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            why = lines[-1] if lines else f"exit code {done.returncode}"
            raise InputError(
                f"{runtime.package} cannot load the model "
                f"for --serve-with runtime: {bounded(why, 300, quote=False)}",
                file=str(path),
                fix=f"save the model again with its framework (a model {runtime.package} loads), "
                "or package it without --serve-with runtime")
        report.info(f"model {adapted.model_name}: {source} loads with {runtime.package} here")


def _samples_files(package: Package) -> list[tuple[Any, int, str, str]]:
    """(analysis, input index, input-relative source, destination) of each samples.npz placed
    in a version directory."""
    out = []
    for m in package.models:
        for e in m.plan.entries:
            parts = e.dest.split("/")
            if len(parts) == 3 and parts[2] == SAMPLES_NAME and parts[1].isdigit() \
                    and e.source is not None:
                out.append((m, m.plan.input_index, e.source, e.dest))
    return out


def check_samples(package: Package, roots: Sequence[Path]) -> None:
    """Every samples.npz matches its model's config: names, data types, shapes."""
    for m, index, source, _ in _samples_files(package):
        where = f"{m.label or roots[index]}/{source}".replace("//", "/")
        config: ParsedConfig = m.config
        if not config.inputs or not config.outputs:
            raise InputError(
                "has samples, but config.pbtxt lists no inputs or outputs to check them against",
                file=where, fix="declare the inputs and outputs in config.pbtxt, or remove "
                f"{SAMPLES_NAME}")
        size = (roots[index] / source).stat().st_size
        if size > SAMPLES_MAX_BYTES:
            raise InputError(f"is {size} bytes; a samples file is at most "
                             f"{SAMPLES_MAX_BYTES} (it is read whole)", file=where,
                             fix="keep a few representative samples")
        from packager import samples as samples_mod  # numpy: only for a model with samples

        data = (roots[index] / source).read_bytes()
        samples_mod.check(samples_mod.parse(samples_mod.load(data, where), where), config, where)


def check_answers(client: Any, module: Any, name: str, version: str, config: ParsedConfig,
                  out: Path, report: Reporter, rtol: float | None = None,
                  atol: float | None = None) -> bool:
    """Send every sample of `out/model_repository/<name>/<version>/samples.npz` and compare the
    answers; False when there is no samples file. A mismatch raises VerifyError (exit 4)."""
    path = out / "model_repository" / name / version / SAMPLES_NAME
    if not path.is_file():
        return False
    from packager import samples as samples_mod  # numpy: only for a model with samples

    where = str(path)
    all_samples = samples_mod.parse(samples_mod.load(path.read_bytes(), where), where)
    types = {n: dt for n, dt, _ in (*config.inputs, *config.outputs)}
    for s in all_samples:
        inputs = []
        for n, array in s.inputs:
            t = module.InferInput(n, list(array.shape), types[n])
            t.set_data_from_numpy(array)
            inputs.append(t)
        wanted = [module.InferRequestedOutput(n) for n, _ in s.outputs]
        try:
            response = client.infer(name, inputs, model_version=version, outputs=wanted)
        except Exception as exc:  # tritonclient's InferenceServerException
            raise VerifyError(f"model {name} version {version}: sample {s.index} was refused: "
                              f"{bounded(str(exc), 300, quote=False)}",
                              fix="check the model's config and samples.npz") from None
        for n, want in s.outputs:
            got = response.as_numpy(n)
            miss = samples_mod.compare(n, s.index, types[n], got, want, rtol, atol)
            if miss is not None:
                shape = "" if got.shape == want.shape else (
                    f" (shape {list(got.shape)}, expected {list(want.shape)})")
                raise VerifyError(
                    f"model {name} version {version}: output {n} of sample {s.index} differs "
                    f"from samples.npz: largest error {miss.largest_error:.6g} at "
                    f"{list(miss.where)}{shape}, beyond rtol {miss.rtol:g} and atol "
                    f"{miss.atol:g}",
                    fix="the served model does not give the answers it gave when the samples "
                    "were written: check the model file and its runtime, or loosen --rtol/--atol")
    report.step(f"verify: {name} v{version}: {len(all_samples)} sample(s) of "
                f"{SAMPLES_NAME} answered within tolerance")
    return True
