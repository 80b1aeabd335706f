"""`verify`: run the packaged image, wait for readiness, send one request built from the config."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.backends import BY_KEY, ENSEMBLE
from packager.basechoice import choose_base_image
from packager.errors import InputError, VerifyError, bounded
from packager.executor.container import logs_tail, serve
from packager.executor.images import registry
from packager.executor.report import Reporter
from packager.imageref import parse_reference
from packager.limits import DEFAULT_OUTPUT, MAX_TOLERANCE
from packager.manifest import check_name
from packager.modelconfig import ParsedConfig, parse_config
from packager.result import ResultDocument


def load_result(out: Path) -> ResultDocument:
    path = out / "result.json"
    try:
        result = ResultDocument.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("does not exist", file=str(path),
                         fix="run `triton-packager package MODEL_DIR` first") from None
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise InputError(f"is not a result document: {bounded(str(exc), quote=False)}",
                         file=str(path), fix="package the model again") from None
    if result.builder not in registry.names():
        raise InputError(f"is not a result document: field 'builder' is "
                         f"{result.builder[:40]!r}, not one of {', '.join(registry.names())}",
                         file=str(path), fix="package the model again")
    # Its values become a path below --output and a docker reference: checked like user input.
    for m in result.models:
        check_name(m.name, file=str(path), field="models")
    parse_reference(result.image, what=f"{path}: field 'image'")
    return result


_USER_RE = re.compile(
    r"(?:[0-9]{1,10}|[a-z_][a-z0-9_-]{0,31})(?::(?:[0-9]{1,10}|[a-z_][a-z0-9_-]{0,31}))?")


def check_user(user: str | None) -> None:
    """`--user`: uid[:gid] or name[:group], refused before anything runs."""
    if user is not None and not _USER_RE.fullmatch(user):
        raise InputError(f"--user {bounded(user)} is not uid[:gid] or name[:group]",
                         fix="give e.g. --user 4242 or --user 4242:4242")


@dataclass(frozen=True)
class VerifyRequest:
    """What `triton-packager verify` is asked to do; the fields are the command's options, with
    the CLI's defaults (tolerances None: by data type)."""

    output: str | os.PathLike[str] = DEFAULT_OUTPUT  # package's output directory
    user: str | None = None  # run the container as uid[:gid] or name[:group]
    rtol: float | None = None
    atol: float | None = None

    def check(self) -> Path:
        """Refuse bad values before any container runs; returns the output directory."""
        if os.fspath(self.output) == "":  # Path("") would be the working directory
            raise InputError("--output is empty", fix="give the output directory of package")
        check_user(self.user)
        for option, value in (("--rtol", self.rtol), ("--atol", self.atol)):
            if value is not None and not 0 <= value <= MAX_TOLERANCE:  # NaN too
                raise InputError(f"{option} {value:g} must be between 0 and 1e6",
                                 fix=f"give a tolerance such as 1e-4, or leave {option} out")
        return Path(self.output)


def verify(request: VerifyRequest | str | os.PathLike[str], report: Reporter | None = None, *,
           user: str | None = None, rtol: float | None = None, atol: float | None = None) -> None:
    """Every model and every version its policy serves must be READY; every model whose
    config declares its inputs (ensembles included) answers one request; every sample of a
    version's samples.npz is answered within the tolerance (rtol/atol: None = by data type).

    `request` is a VerifyRequest, or the output directory with the options as keywords."""
    if not isinstance(request, VerifyRequest):
        request = VerifyRequest(request, user, rtol, atol)
    elif (user, rtol, atol) != (None, None, None):
        raise TypeError("give user, rtol and atol in the VerifyRequest")
    out = request.check()
    user, rtol, atol = request.user, request.rtol, request.atol
    report = report if report is not None else Reporter.create(quiet=True)
    import tritonclient.http as httpclient

    from packager.executor.serving import check_answers

    result = load_result(out)
    configs = {}
    for m in result.models:
        backend = BY_KEY.get(m.backend)
        config_path = out / "model_repository" / m.name / "config.pbtxt"
        configs[m.name] = parse_config(config_path.read_text(encoding="utf-8"),
                                       file=str(config_path))
        if backend is ENSEMBLE:
            continue
        held = choose_base_image(backend, result.base_image).backends if backend else frozenset()
        if backend is None or (held is not None and backend.backend not in held):
            raise VerifyError(
                f"{result.base_image} has no {m.backend} backend, so model {m.name} cannot load",
                fix="package with an NGC base image that has the backend (the default)",
            )
    # The builder that holds the image makes it runnable where `serve` runs it.
    registry.get(result.builder).make_runnable(result.image, result.image_id, report)
    report.step(f"verify: starting {result.image}")
    with serve(result.image, user=user) as running:
        client = httpclient.InferenceServerClient(running.http_url)
        for m in result.models:
            config = configs[m.name]
            served = config.served(m.versions)
            for v in served:
                if not client.is_model_ready(m.name, str(v)):
                    raise VerifyError(f"model {m.name} version {v} is not ready\n"
                                      f"{logs_tail(running.container_id)}")
            _one_request(client, running.container_id, m.name, str(max(served)), config, report)
            checked = [check_answers(client, httpclient, m.name, str(v), config, out, report,
                                     rtol, atol) for v in served]
            if not any(checked):
                report.info(f"verify: {m.name}: no samples.npz beside the model, so its answers "
                            "were not checked (only that it answers)")


def _one_request(client: Any, container_id: str, name: str, version: str, config: ParsedConfig,
                 report: Reporter) -> None:
    import tritonclient.http as httpclient

    # numpy (through packager.inference) only when a request is sent: push imports this
    # module for load_result.
    from packager.inference import cannot_sample, request_specs, sample, shape_matches

    ins, outs = request_specs(config)
    if not ins or not outs:
        report.info(f"verify: {name}: the config lists no inputs or outputs; readiness checked "
                    "only")
        return
    unsendable = [why for spec in ins if (why := cannot_sample(spec))]
    if unsendable:
        report.info(f"verify: {name}: {unsendable[0]}; readiness checked only")
        return
    inputs = []
    for spec in ins:
        tensor = httpclient.InferInput(spec.name, list(spec.shape), spec.datatype)
        tensor.set_data_from_numpy(sample(spec))
        inputs.append(tensor)
    try:
        response = client.infer(name, inputs, model_version=version)
    except Exception as exc:  # tritonclient raises its own InferenceServerException
        raise VerifyError(f"inference on {name} failed: {exc}\n{logs_tail(container_id)}",
                          fix="check the config's inputs against model.py / the model") from None
    got = {o["name"]: o for o in response.get_response()["outputs"]}
    for spec in outs:
        o = got.get(spec.name)
        if o is None:
            raise VerifyError(f"{name}: output {spec.name} missing from the response (got "
                              f"{', '.join(got) or 'none'})")
        if o["datatype"] != spec.datatype or not shape_matches(spec.shape, tuple(o["shape"])):
            raise VerifyError(
                f"{name}: output {spec.name} is {o['datatype']}{o['shape']}, the config says "
                f"{spec.datatype}{list(spec.shape)}",
                fix="make model.py / the model agree with config.pbtxt",
            )
    report.step(f"verify: {name} v{version} is ready and answered "
                f"{', '.join(s.name for s in outs)}")
