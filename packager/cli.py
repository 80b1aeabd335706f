"""`triton-packager`: one subcommand per phase. Errors print one message, never a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from packager import __version__, phasetable, tekton
from packager.analysis import HEALTHCHECK_CHOICES
from packager.configgen import (
    DEFAULT_MAX_BATCH_SIZE,
    INSTANCE_KINDS,
    MAX_BATCH_SIZE_LIMIT,
    MAX_INSTANCE_COUNT,
    ConfigOptions,
)
from packager.errors import (
    EnvironmentFault,
    InputError,
    Interrupted,
    PackagerError,
    bounded,
    printable,
    redact,
)
from packager.executor.images import registry
from packager.executor.report import Reporter
from packager.imageref import DEFAULT_NAME_TEMPLATE
from packager.limits import (
    DEFAULT_OUTPUT,
    DEFAULT_SETUP_MAX_BYTES,
    DEFAULT_SETUP_MAX_RATIO,
    DEFAULT_SETUP_TIMEOUT,
    DEFAULT_TRAIN_TIMEOUT,
    ENV_MANAGERS,
    MAX_TIMEOUT,
    MAX_TOLERANCE,
    PULL_CHOICES,
    PUSHERS,
)
from packager.pyenv import DEFAULT_CHANNELS, DEFAULT_MICROMAMBA_URL, EnvOptions
from packager.runtime import SERVE_WITH

if TYPE_CHECKING:  # imported when a phase runs: `--help` and `verify` need no analysis modules
    from packager.executor.package import PackageRequest


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{bounded(text)} is not a number of seconds") from None
    if not (0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(f"{bounded(text)} must be between 0 and 30 days")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]{1,12}", text.strip()):
            raise argparse.ArgumentTypeError(f"{bounded(text)} is not a whole number")
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{bounded(text)} is not a number") from None
    if not 0 <= value <= MAX_TOLERANCE:
        raise argparse.ArgumentTypeError(f"{bounded(text)} must be between 0 and 1e6")
    return value


def _config_flags(sp: argparse.ArgumentParser) -> None:
    g = sp.add_argument_group(
        "generated config.pbtxt (when the model directory has none and the packager reads the "
        "model: ONNX, OpenVINO, TensorFlow SavedModel)")
    g.add_argument("--max-batch-size", type=_int_between(0, MAX_BATCH_SIZE_LIMIT), default=None,
                   metavar="N", help="max_batch_size when every input and output starts with a "
                   f"dynamic dimension (default: {DEFAULT_MAX_BATCH_SIZE}; otherwise 0)")
    g.add_argument("--dynamic-batching", action="store_true",
                   help="add dynamic_batching { } (needs batching)")
    g.add_argument("--instance-count", type=_int_between(1, MAX_INSTANCE_COUNT), default=None,
                   metavar="N", help="add an instance_group with N instances (default kind: auto)")
    g.add_argument("--instance-kind", choices=tuple(INSTANCE_KINDS), default=None,
                   help="the instance_group's kind (default count: 1)")
    sp.add_argument("--serve-with", choices=SERVE_WITH, default="native",
                    help="native: the model's own Triton backend (default); runtime: ONNX, "
                    "OpenVINO and TensorFlow SavedModel models served by the Python backend, "
                    "which runs the model file with its runtime from PyPI (onnxruntime, "
                    "openvino, tensorflow-cpu) -- on the local CPU base image too")


def _config_options(args: argparse.Namespace) -> ConfigOptions:
    return ConfigOptions(max_batch_size=args.max_batch_size,
                         dynamic_batching=args.dynamic_batching,
                         instance_count=args.instance_count, instance_kind=args.instance_kind)


def _output_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    sp.add_argument("--json", action="store_true", help="JSON lines on stdout")
    sp.add_argument("--debug", action="store_true",
                    help="print a traceback with errors (for bug reports)")


def _dockerfile_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--base-image", default=None,
                    help="base image (default: an NGC tritonserver release that has the "
                    "model's backend); with buildah also oci-archive:PATH[:NAME], "
                    "docker-archive:PATH[:NAME] or docker-daemon:NAME")
    sp.add_argument("--healthcheck", choices=HEALTHCHECK_CHOICES, default="auto",
                    help="HEALTHCHECK tool (auto: where the base image is known to have curl)")
    sp.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                    help="extra image label (repeatable)")
    sp.add_argument("--template-dir", default=None,
                    help="directory of Jinja2 templates that override the built-in ones "
                    "(Dockerfile.j2, backends/<backend>.j2)")
    env = sp.add_argument_group("Python environments (builder stages only)")
    env.add_argument("--pip-index-url", default=None, help="pip index for requirements.txt")
    env.add_argument("--conda-channel", action="append", default=None,
                     help="conda channel (repeatable; default conda-forge)")
    env.add_argument("--micromamba-url", default=DEFAULT_MICROMAMBA_URL,
                     help="where the builder downloads micromamba (for mirrors)")
    env.add_argument("--python-version", default=None,
                     help="the base image's Python (3.X), for images the packager cannot identify")
    env.add_argument("--ca-bundle", default=None,
                     help="CA certificates the builder stages trust (corporate TLS proxies)")
    for proxy in ("http-proxy", "https-proxy", "no-proxy"):
        env.add_argument(f"--{proxy}", default=None,
                         help=f"{proxy.upper().replace('-', '_')} for the builder stages")


def _dockerfile_fields(args: argparse.Namespace, request: PackageRequest) -> PackageRequest:
    return dataclasses.replace(
        request, labels=tuple(args.label), template_dir=args.template_dir,
        base_image=args.base_image, healthcheck=args.healthcheck,
        env=EnvOptions(pip_index_url=args.pip_index_url,
                       conda_channels=tuple(args.conda_channel or DEFAULT_CHANNELS),
                       micromamba_url=args.micromamba_url, python_version=args.python_version),
        ca_bundle=args.ca_bundle, http_proxy=args.http_proxy, https_proxy=args.https_proxy,
        no_proxy=args.no_proxy,
    )


def _build_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--image-name", default=DEFAULT_NAME_TEMPLATE,
                    help="image name template over Name, Version and RandomUUID "
                    f"(default: {DEFAULT_NAME_TEMPLATE})")
    sp.add_argument("--tag", default=None, help="exact image reference; wins over "
                    "--image-name")
    sp.add_argument("--no-cache", action="store_true", help="build without the cache")
    sp.add_argument("--builder", choices=registry.choices(), default=registry.AUTO,
                    help="image builder: docker (a Docker engine), buildah (no daemon; "
                    "storage from TRITON_PACKAGER_BUILDAH_DRIVER/_ROOT/_RUNROOT) or "
                    "auto (docker when an engine answers, else buildah)")
    sp.add_argument("--platform", default=None, help="target platform, e.g. linux/amd64")
    sp.add_argument("--pull", choices=PULL_CHOICES, default="missing",
                    help="missing: use the base image the builder holds under its name; "
                    "always: pull a registry base again even when held (a store kept "
                    "between runs may hold another image under that name)")
    sp.add_argument("--max-layer-size", default=None, metavar="SIZE",
                    help="largest weights layer, e.g. 1GiB, 512MiB (default: 1GiB; a "
                    "file larger than it is a layer of its own)")


def _build_fields(args: argparse.Namespace, request: PackageRequest) -> PackageRequest:
    return dataclasses.replace(
        request, image_name=args.image_name, tag=args.tag, no_cache=args.no_cache,
        builder=args.builder, platform=args.platform, pull=args.pull,
        max_layer_size=args.max_layer_size,
    )


@dataclass(frozen=True)
class _OptionGroup:
    """The options a phase adds to its subcommand (and to every later phase's), and the
    PackageRequest fields they map to."""

    add: Callable[[argparse.ArgumentParser], None]
    fields: Callable[[argparse.Namespace, PackageRequest], PackageRequest]


_OPTION_GROUPS = {
    phasetable.DOCKERFILE_OPTIONS: _OptionGroup(_dockerfile_flags, _dockerfile_fields),
    phasetable.BUILD_OPTIONS: _OptionGroup(_build_flags, _build_fields),
}


def _parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(
        prog="triton-packager",
        description="Package a trained model directory into a Triton Inference Server image.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def phase(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("input", metavar="MODEL_DIR", nargs="+",
                        help="directory holding the model files; several model directories "
                        "are packaged into one image, and a Triton model repository "
                        "(<name>/config.pbtxt, <name>/<version>/) is packaged as it is")
        sp.add_argument("-o", "--output", default=DEFAULT_OUTPUT,
                        help=f"output directory (default: ./{DEFAULT_OUTPUT})")
        sp.add_argument("--force", action="store_true",
                        help="redo phases even when their inputs are unchanged, rehash every "
                        "input file, and allow writing into an --output that triton-packager "
                        "did not create (replacing its model_repository/ and context/)")
        sp.add_argument("--allow-secret-files", action="store_true",
                        help="package files that look like secrets (.env, .ssh/, *.pem, "
                        "id_rsa, ...) instead of refusing the input; they are still listed "
                        "in a warning")
        _config_flags(sp)
        _output_flags(sp)
        sp.set_defaults(run=_phase)
        return sp

    co = sub.add_parser("config", help="print the config.pbtxt the packager would package "
                        "(given, or generated from the model file); writes nothing",
                        description="Print the config.pbtxt the packager would package: the "
                        "given one, or one generated from the model file. Writes nothing.")
    co.add_argument("input", metavar="MODEL_DIR", help="directory holding the model files")
    _config_flags(co)
    _output_flags(co)
    co.set_defaults(run=_config)

    for entry in phasetable.PHASES.values():
        sp = phase(entry.name, entry.help)
        for group in phasetable.option_groups(entry.name):
            _OPTION_GROUPS[group].add(sp)
    ve = sub.add_parser("verify", help="run the packaged image and send it one inference request")
    ve.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help="output directory of package")
    ve.add_argument("--user", default=None, help="run the container as this uid[:gid]")
    for tol, default in (("rtol", "1e-4 for FP32, 1e-2 for FP16, 1e-7 for FP64"),
                         ("atol", "1e-5 for FP32, 1e-3 for FP16, 1e-9 for FP64")):
        ve.add_argument(f"--{tol}", type=_tolerance, default=None,
                        help=f"{'relative' if tol == 'rtol' else 'absolute'} tolerance of the "
                        f"answers to samples.npz, for floating-point outputs (default: {default}; "
                        "integers and BOOL must be equal)")
    pu = sub.add_parser("push", help="push the image named in result.json; record its digest")
    pu.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help="output directory of package")
    pu.add_argument("--registry", default=None,
                    help="registry host[:port][/path] to push to (the image is tagged under it)")
    pu.add_argument("--builder", choices=registry.names(), default=None,
                    help="push from this builder's images (default: the one result.json names)")
    pu.add_argument("--authfile", default=None,
                    help="Docker-style auth file (default: $REGISTRY_AUTH_FILE, "
                    "$DOCKER_CONFIG/config.json); or set TRITON_PACKAGER_REGISTRY_USERNAME and "
                    "TRITON_PACKAGER_REGISTRY_PASSWORD (or their _FILE variants). Credentials "
                    "are never taken from the command line")
    pu.add_argument("--ca-bundle", default=None,
                    help="PEM file of the registry's CA (with --pusher builder, the Docker "
                    "engine reads /etc/docker/certs.d instead)")
    pu.add_argument("--tls-verify", choices=("true", "false"), default="true",
                    help="check the registry's certificate (default: true; with --pusher "
                    "builder, buildah only)")
    pu.add_argument("--pusher", choices=PUSHERS, default="layers",
                    help="layers (default): each layer sent by the packager, weights "
                    "uncompressed, layers already in the registry never sent; builder: the "
                    "builder's own push (docker push / buildah push), every layer gzipped")
    pu.add_argument("--layer-compression", choices=("auto", "gzip"), default="auto",
                    help="auto (default): weights uncompressed, other layers gzipped; gzip: "
                    "every layer gzipped (a registry that refuses uncompressed layers)")
    pu.add_argument("--image-url-file", default=None,
                    help="write the pushed reference here (Tekton result IMAGE_URL)")
    pu.add_argument("--image-digest-file", default=None,
                    help="write the pushed digest here (Tekton result IMAGE_DIGEST)")
    pr = sub.add_parser("prune", help="remove the weights images (triton-packager/weights:<digest>) "
                        "no remaining image uses")
    pr.add_argument("--builder", choices=registry.choices(), default=registry.AUTO,
                    help="the builder whose images to prune (default: auto)")
    pr.add_argument("--dry-run", action="store_true", help="list what would be removed")
    for sp in (ve, pu, pr):
        _output_flags(sp)
    tr = sub.add_parser("train", help="run an MLproject entry point and collect a model directory")
    tr.add_argument("project", metavar="PROJECT", help="MLproject repository")
    tr.add_argument("--target", required=True, help="directory that receives the trained model")
    tr.add_argument("-e", "--entry-point", default="main")
    tr.add_argument("-P", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="entry point parameter (repeatable)")
    tr.add_argument("--name", default=None, help="model name (default: the MLproject name)")
    tr.add_argument("--version", default="1", help="model version (default: 1)")
    tr.add_argument("--env-manager", default="local", choices=ENV_MANAGERS,
                    help="local: this interpreter; virtualenv: a fresh one from python_env or "
                    "requirements.txt; conda: from conda_env (needs conda/micromamba)")
    tr.add_argument("--data-dir", default="data", help="project files copied into the output")
    tr.add_argument("--overwrite-data", action="store_true",
                    help="let data/ files replace files the training produced")
    tr.add_argument("--archive", default=None, help="also write the result as .zip/.tar.gz")
    tr.add_argument("--timeout", type=_seconds, default=DEFAULT_TRAIN_TIMEOUT, metavar="SECONDS",
                    help="stop the training (and every process it started) after this long "
                    f"(default: {DEFAULT_TRAIN_TIMEOUT:.0f})")
    tr.add_argument("--force", action="store_true",
                    help="replace a non-empty --target that triton-packager did not create")
    su = sub.add_parser("setup", help="unpack a training artifact (.zip/.tar[.gz], path or URL)")
    su.add_argument("artifact", metavar="ARTIFACT")
    su.add_argument("-o", "--output", required=True, help="directory to unpack into")
    su.add_argument("--max-size", type=int, default=DEFAULT_SETUP_MAX_BYTES,
                    help="refuse archives that expand past this many bytes")
    su.add_argument("--max-ratio", type=int, default=DEFAULT_SETUP_MAX_RATIO,
                    help="refuse archives that expand to more than this many times their own "
                    f"size, past 256 MiB (default: {DEFAULT_SETUP_MAX_RATIO}; 0 turns the check "
                    "off)")
    su.add_argument("--timeout", type=_seconds, default=DEFAULT_SETUP_TIMEOUT, metavar="SECONDS",
                    help="give up on the whole download and unpack after this long "
                    f"(default: {DEFAULT_SETUP_TIMEOUT:.0f})")
    su.add_argument("--force", action="store_true",
                    help="replace a non-empty --output that triton-packager did not create")
    su.add_argument("--ca-bundle", default=None, metavar="PATH",
                    help="CA certificates trusted for an https artifact besides the system's: "
                    "a PEM file, or a directory of them (a mounted ConfigMap or Secret); empty: "
                    "none (an unbound optional Tekton workspace)")
    for sp in (tr, su):
        _output_flags(sp)
    bi = sub.add_parser("base-image", help="build the local CPU Triton base image from PyPI")
    bi.add_argument("--force", action="store_true", help="rebuild even if it exists")
    bi.add_argument("--mirror", default=None, help="Debian mirror for debootstrap")
    bi.add_argument("--builder", choices=registry.choices(), default=registry.AUTO,
                    help="where the image goes: the Docker engine or buildah's storage (no "
                    "engine needed); auto: buildah with --output, else docker when an engine "
                    "answers")
    bi.add_argument("--output", default=None, metavar="oci-archive:PATH",
                    help="also write the image to oci-archive:PATH or docker-archive:PATH "
                    "(with buildah)")
    _output_flags(bi)
    for sp, run in ((ve, _verify), (pu, _push), (pr, _prune), (tr, _train), (su, _setup),
                    (bi, _base_image)):
        sp.set_defaults(run=run)
    tekton.add_parsers(sub, _output_flags)  # each sets its own handler (run=...)
    return p


class _ArgumentParser(argparse.ArgumentParser):
    """argparse's own errors, bounded: a 300 kB option value must not flood the terminal."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {bounded(message, 300, quote=False)}\n")


def _on_signal(signum: int, _frame: object) -> None:
    # SIGTERM (Kubernetes, Tekton, `kill`) is handled like Ctrl-C: the exception unwinds every
    # `finally`, so staging folders are removed and child process groups are killed. Later
    # signals are ignored while that cleanup runs.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}; partial outputs removed")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = Reporter.create(quiet=args.quiet, json_lines=args.json)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in previous:
            signal.signal(sig, _on_signal)
    try:
        try:
            return _run(args, report)
        except KeyboardInterrupt:
            raise Interrupted("interrupted; partial outputs removed") from None
        except OSError as exc:
            raise EnvironmentFault.from_oserror(exc) from exc
        except RecursionError as exc:
            raise InputError("the input nests too deeply to be read",
                             fix="flatten the input (fewer nested directories or YAML levels)",
                             ) from exc
    except PackagerError as err:
        if args.debug:
            traceback.print_exc()
        report.error(str(err), exit_code=err.exit_code)
        if report.mode == "json":  # a machine reader still gets the message on stderr
            # ... as the reporter shows it: credentials masked, no terminal escapes.
            print(f"error: {printable(redact(str(err)))}", file=sys.stderr)
        return err.exit_code
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if args.debug:
            traceback.print_exc()
        report.error(f"internal error: {type(exc).__name__}: {bounded(str(exc), 300, quote=False)}"
                     "\n  fix: rerun with --debug and report the traceback", exit_code=1)
        return 1
    finally:
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _run(args: argparse.Namespace, report: Reporter) -> int:
    # Each subcommand's parser names its handler (set_defaults(run=...)): no name compared here.
    handler: Callable[[argparse.Namespace, Reporter], int] = args.run
    return handler(args, report)


def _base_image(args: argparse.Namespace, report: Reporter) -> int:
    from packager.executor.cpu_base import BaseImageRequest, ensure_base_image

    ref = ensure_base_image(BaseImageRequest(force=args.force, mirror=args.mirror,
                                             builder=args.builder, output=args.output), report)
    print(ref)
    return 0


def _train(args: argparse.Namespace, report: Reporter) -> int:
    from packager.executor.runs.trainer import TrainRequest, train

    target = train(TrainRequest(
        project=args.project, target=args.target, entry_point=args.entry_point,
        params=tuple(args.param), name=args.name, version=args.version,
        env_manager=args.env_manager, data_dir=args.data_dir, overwrite_data=args.overwrite_data,
        archive=args.archive, timeout=args.timeout, force=args.force,
    ), report)
    print(target)
    return 0


def _setup(args: argparse.Namespace, report: Reporter) -> int:
    from packager.executor.runs.artifact import SetupRequest, setup

    print(setup(SetupRequest(
        artifact=args.artifact, output=args.output, max_size=args.max_size,
        max_ratio=args.max_ratio, timeout=args.timeout, force=args.force,
        ca_bundle=args.ca_bundle,
    ), report))
    return 0


def _config(args: argparse.Namespace, report: Reporter) -> int:
    from packager.analysis import analyze, analyze_package
    from packager.executor.reader import read_input
    from packager.layout import is_model_folder

    tree = read_input(args.input)
    # A lone Triton model folder (config.pbtxt, 1/model.onnx) is read as `package` reads
    # it; config writes nothing, so secret-looking files do not stop it.
    analysis = (analyze_package([tree], _config_options(args),
                                allow_secret_files=True).models[0]
                if is_model_folder(tree.entries) else analyze(tree, _config_options(args)))
    for w in analysis.warnings:  # what the packager could not tell from the model
        report.warn(w)
    for n in analysis.notes:
        report.info(n)
    if args.serve_with == "runtime":
        from packager.analysis import as_package
        from packager.runtime import serve_with_runtime

        served, _ = serve_with_runtime(as_package(analysis))
        for n in served.notes[len(analysis.notes):]:
            report.info(n)
        sys.stdout.write(served.plan.models[0].config_text)
        return 0
    sys.stdout.write(analysis.plan.config_text)
    return 0


def _verify(args: argparse.Namespace, report: Reporter) -> int:
    from packager.executor.verify import VerifyRequest, verify

    verify(VerifyRequest(output=args.output, user=args.user, rtol=args.rtol, atol=args.atol),
           report)
    return 0


def _prune(args: argparse.Namespace, report: Reporter) -> int:
    from packager.executor.prune import prune

    pruned = prune(registry.select(args.builder), report, dry_run=args.dry_run)
    for name in pruned.removed:
        print(name)
    return 0


def _push(args: argparse.Namespace, report: Reporter) -> int:
    from packager.executor.push import PushRequest, push

    pushed = push(PushRequest(
        out=args.output, registry=args.registry, builder=args.builder,
        authfile=args.authfile, ca_bundle=args.ca_bundle, tls_verify=args.tls_verify == "true",
        image_url_file=args.image_url_file, image_digest_file=args.image_digest_file,
        pusher=args.pusher, layer_compression=args.layer_compression,
    ), report)
    print(f"{pushed.image}@{pushed.pushed_digest}")
    return 0


def _phase(args: argparse.Namespace, report: Reporter) -> int:
    """A phase of packager.phasetable: its arguments as a PackageRequest, run up to it."""
    from packager.executor.package import PackageRequest

    request = PackageRequest(
        input=args.input, output=args.output, phase=args.command,
        model_config=_config_options(args), allow_secret_files=args.allow_secret_files,
        serve_with=args.serve_with, force=args.force,
    )
    for group in phasetable.option_groups(args.command):
        request = _OPTION_GROUPS[group].fields(args, request)
    ws = request.workspace(report)
    outcome = ws.run(args.command)
    if outcome.result is not None and report.mode != "json":
        r = outcome.result
        where = ws.builder.run_hint(r.image)
        report.info(
            f"run it{where}:\n"
            f"  docker run --rm --shm-size=256m -p 8000:8000 -p 8001:8001 -p 8002:8002 {r.image}\n"
            "query it:\n"
            f"  curl -s localhost:8000/v2/models/{r.model_name}/versions/{r.model_version}/ready\n"
            f"  curl -s localhost:8000/v2/models/{r.model_name}   # inputs and outputs\n"
            f"  triton-packager verify --output {args.output}   # runs it and sends one request"
        )
        print(r.image)
    return 0
