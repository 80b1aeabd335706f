"""Two steps of the Tekton Pipeline (deploy/tekton) that only make sense in a cluster.

`tekton-check`: the Pipeline's first Task. Every parameter and workspace a run depends on is
checked before anything is trained, unpacked, built or pushed, and a bad one fails the run with
one message naming the Pipeline param (or workspace) and the fix. Tekton's own `when` compares
exact strings, so `train: "True"` would skip both train and setup; this step makes that a
failure instead (`enable-param-enum`, which could restrict the values, is off by default).

`tekton-results`: the build Task's last step. result.json becomes the Tekton object result
RESULT (string properties only: the original result step read it as `map[string]string`), and
the base image's manifest digest becomes BASE_IMAGE_DIGEST (buildah's storage knows it once the
base was pulled). Tekton stores a step's results in its container's termination message, which
Kubernetes caps at 4096 bytes (tektoncd/pipeline pkg/termination/write.go, WriteMessage:
MaxContainerTerminationMessageLength); the results written here are bounded to fit it.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from packager.errors import InputError, bounded
from packager.executor.fs import write_atomic
from packager.executor.report import Reporter
from packager.limits import CA_BUNDLE_MAX

BOOLEAN = ("true", "false")
SECRET_KEY = ".dockerconfigjson"  # the key of a kubernetes.io/dockerconfigjson Secret
# The properties of the RESULT object result, in the Task's order (deploy/tekton/task-build.yaml
# declares the same list; a test keeps them equal). Per-model keys and warnings stay in the
# build's log: they are unbounded.
RESULT_PROPERTIES = ("image", "pushed_image", "pushed_digest", "image_id", "model_name",
                     "model_version", "backend", "models", "base_image", "base_image_id",
                     "builder", "dockerfile_sha256", "schema_version")
# Kubernetes' limit on a container's termination message, where Tekton keeps a step's results.
TERMINATION_MESSAGE_MAX = 4096
# What the results in one step's message may take of it: Tekton adds its own entries (the step's
# start time) to the same message. And a step's message holds more than what the step wrote:
# at its end the entrypoint reads *every* result file the Task declares that exists by then
# (tektoncd/pipeline pkg/entrypoint/entrypointer.go, readResultsFromDisk over e.Results), so the
# build Task's last step (`results`) carries IMAGE_URL and IMAGE_DIGEST again, written by `push`
# before it. The budget counts all four.
RESULTS_BUDGET = 3072
# The build Task's results written before tekton-results runs (by `push`), which the results
# step's termination message repeats.
EARLIER_RESULTS = ("IMAGE_URL", "IMAGE_DIGEST")
VALUE_MAX = 512


def termination_message_size(results: Mapping[str, str]) -> int:
    """The bytes Tekton's entrypoint writes for these results: a JSON list of
    {"key", "value", "type"} entries (pkg/result RunResult; pkg/termination WriteMessage)."""
    entries = [{"key": k, "value": v, "type": 1} for k, v in results.items()]
    return len(json.dumps(entries, separators=(",", ":")).encode("utf-8"))


def add_parsers(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                output_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    ch = sub.add_parser("tekton-check", help="check a Tekton run's params and workspaces "
                        "before anything runs (the Pipeline's first Task)")
    ch.add_argument("--train", required=True, help='the `train` param: "true" or "false"')
    ch.add_argument("--artifact", default="", help="the `artifact` param")
    ch.add_argument("--project", default="", help="the `project` param")
    ch.add_argument("--registry", required=True, help="the `registry` param")
    ch.add_argument("--tls-verify", required=True, help='the `tlsVerify` param: "true" or "false"')
    ch.add_argument("--base-image", required=True, help="the `baseImage` param")
    ch.add_argument("--image-name", required=True, help="the `imageName` param")
    ch.add_argument("--dockerconfig", required=True,
                    help="where the `dockerconfig` workspace (the registry Secret) is mounted")
    ch.add_argument("--ca-dir", default="",
                    help="where the optional `ca` workspace is mounted; empty: not bound")
    ch.add_argument("--packager-image", default=None,
                    help="the `packagerImage` param: must be digest-pinned (@sha256:...)")
    ch.add_argument("--reach", action="store_true",
                    help="also open a TCP connection to the registry (and the base image's "
                    "registry), so an unreachable one fails the run before anything is built")
    output_flags(ch)
    ch.set_defaults(run=run_check)
    op = sub.add_parser("tekton-options", help="refuse a packageOptions / pushOptions word "
                        "outside the allow-list (the build Task's privileged steps take them)")
    op.add_argument("param", choices=tuple(ALLOWED_OPTIONS),
                    help="which array param: packageOptions or pushOptions")
    op.add_argument("words", nargs=argparse.REMAINDER,
                    help="the param's words, after `--` (one argument each)")
    output_flags(op)
    op.set_defaults(run=run_options)
    re_ = sub.add_parser("tekton-results", help="write result.json as Tekton results (RESULT, "
                         "BASE_IMAGE_DIGEST)")
    re_.add_argument("-o", "--output", required=True, help="output directory of package and push")
    re_.add_argument("--result-file", required=True, help="the object result RESULT's file")
    re_.add_argument("--base-digest-file", required=True,
                     help="the result BASE_IMAGE_DIGEST's file")
    re_.add_argument("--remove-image", action="store_true",
                     help="then remove the pushed image (every name of it) from buildah's "
                     "storage: a store kept between runs (the buildCache workspace) must not "
                     "keep this run's image under any name")
    output_flags(re_)
    re_.set_defaults(run=run_results)


def run_options(args: argparse.Namespace, report: Reporter) -> int:
    # argparse drops the first `--` (the Task's own, before the array); a `--` inside the
    # array stays and is refused (package would read the words after it as MODEL_DIRs).
    check_options(args.param, list(args.words))
    report.step(f"tekton-options: {args.param} holds only allowed options")
    return 0


def run_check(args: argparse.Namespace, report: Reporter) -> int:
    if args.packager_image is not None:
        check_packager_image(args.packager_image)
    check_run(args.train, args.artifact, args.project, args.registry, args.tls_verify,
              args.base_image, args.image_name, Path(args.dockerconfig),
              Path(args.ca_dir) if args.ca_dir else None)
    if args.reach:
        reach_registries(args.registry, args.base_image)
    report.step("tekton-check: params and workspaces are usable")
    return 0


def run_results(args: argparse.Namespace, report: Reporter) -> int:
    results = write_results(Path(args.output), Path(args.result_file), Path(args.base_digest_file))
    report.step(f"tekton-results: RESULT ({len(results)} properties) and BASE_IMAGE_DIGEST")
    if args.remove_image and results["image_id"]:
        from packager.executor.images import registry

        builder = registry.get(results["builder"])
        builder.remove_image_id(results["image_id"])
        report.step(f"tekton-results: removed {results['image']} ({results['image_id'][:19]}) "
                    f"from {builder.name}'s store")
    return 0


# The words the build Task's array params may hold, by param: flag -> takes a value. An
# allow-list: a flag the packager gains later is refused here until added. Left out on purpose
# (the Task sets them, the check validated them, or they reach what the privileged build runs
# or reads): --template-dir (RUN lines of its own), --tag, --image-name, --base-image, --builder,
# --pull, -o/--output, --ca-bundle (a file of the pod, e.g. the registry Secret, into the build
# context), --force, MODEL_DIR words (another directory, e.g. a mounted Secret, packaged into the
# image); and for push --registry, --builder, --authfile, --ca-bundle, --tls-verify and the
# result files. Abbreviations (argparse accepts `--templ` for --template-dir) are refused too:
# only exact flags pass.
_OUTPUT_OPTIONS = {"--quiet": False, "-q": False, "--json": False, "--debug": False}
ALLOWED_OPTIONS: dict[str, dict[str, bool]] = {
    "packageOptions": {
        "--label": True, "--healthcheck": True, "--platform": True, "--no-cache": False,
        "--pip-index-url": True, "--conda-channel": True, "--micromamba-url": True,
        "--python-version": True, "--http-proxy": True, "--https-proxy": True,
        "--no-proxy": True, "--max-batch-size": True, "--dynamic-batching": False,
        "--instance-count": True, "--instance-kind": True, "--max-layer-size": True,
        "--serve-with": True, **_OUTPUT_OPTIONS,
    },
    "pushOptions": {"--pusher": True, "--layer-compression": True, **_OUTPUT_OPTIONS},
}
# Labels the packager sets itself (the weights image's base ID): not to be given.
RESERVED_LABEL_PREFIX = "io.triton-packager."


def check_options(param: str, words: list[str]) -> None:
    """InputError naming the param unless every word is an allowed flag (`--flag value` or
    `--flag=value`) or the value of the flag before it."""
    allowed = ALLOWED_OPTIONS[param]
    fix = (f"{param} takes only {', '.join(sorted(f for f in allowed if f.startswith('--')))}; "
           "what the Task sets itself (builder, base image, name, registry, TLS, credentials, "
           "templates) comes from the Pipeline's own params")
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if flag not in allowed:
            what = "an option not allowed" if word.startswith("-") else \
                "not an option (a stray word would be another MODEL_DIR or value)"
            raise _param_error(param, word, f"word {i + 1} is {what}", fix)
        takes_value = allowed[flag]
        if takes_value and not eq:
            if i + 1 >= len(words) or words[i + 1].startswith("-"):
                raise _param_error(param, word, f"word {i + 1} needs a value after it", fix)
            i += 1
            value = words[i]
        elif eq and not takes_value:
            raise _param_error(param, word, f"word {i + 1} takes no value", fix)
        if flag == "--label" and value.strip().lower().startswith(RESERVED_LABEL_PREFIX):
            raise _param_error(param, value, f"labels under {RESERVED_LABEL_PREFIX} are the "
                               "packager's own", "choose another label key")
        i += 1


_PINNED = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")


def check_packager_image(image: str) -> None:
    """The step image must be digest-pinned: a tag can be moved to other code between runs."""
    if not _PINNED.fullmatch(image):
        raise _param_error("packagerImage", image, "is not digest-pinned (REPOSITORY@sha256:...)",
                           "give the reference `deploy/image/build.py --push` printed; better, "
                           "install Tasks with the image baked in (deploy/tekton/check.py "
                           "--pin-image REF --out DIR) so no run can choose it")


def _param_error(name: str, value: str, problem: str, fix: str) -> InputError:
    return InputError(f"param {name} = {bounded(value, 120)}: {problem}", fix=fix)


def _as_param(name: str, value: str, check: Callable[[str], object]) -> None:
    """Run the CLI's own check of an option, and name the Pipeline param in its message."""
    try:
        check(value)
    except InputError as exc:
        raise InputError(f"param {name}: {exc.message}", fix=exc.fix) from None


def _check_base_image(value: str) -> None:
    from packager.basechoice import split_base_source
    from packager.imageref import parse_reference

    _, source = split_base_source(value)
    if source is None:
        parse_reference(value, what="--base-image")


def check_run(train: str, artifact: str, project: str, registry: str, tls_verify: str,
              base_image: str, image_name: str, dockerconfig: Path, ca_dir: Path | None) -> None:
    """Refuse (InputError naming the param or workspace) what would make the run fail late, or
    package something this run did not produce."""
    from packager.executor.push import check_authfile, check_registry
    from packager.imageref import render_image_name

    if train not in BOOLEAN:
        raise _param_error("train", train, 'must be exactly "true" or "false" (Tekton compares '
                           "`when` values as exact strings: any other value would skip both "
                           "train and setup)", 'give train: "true" (train `project`) or "false" '
                           "(unpack `artifact`)")
    if train == "true" and not project.strip():
        raise _param_error("project", project, 'is empty, and train is "true"',
                           "give the MLproject repository's path in the shared workspace")
    if train == "false" and not artifact.strip():
        raise _param_error("artifact", artifact, 'is empty, and train is "false"',
                           "give the training artifact's http(s) URL or its path in the shared "
                           'workspace, or set train: "true" with a project')
    if tls_verify not in BOOLEAN:
        raise _param_error("tlsVerify", tls_verify, 'must be exactly "true" or "false"',
                           'give tlsVerify: "true" (the default) or "false" (test registries)')
    _as_param("registry", registry, check_registry)
    _as_param("baseImage", base_image, _check_base_image)
    _as_param("imageName", image_name, lambda v: render_image_name(
        v, name="model", version=1, random_uuid="0" * 32))
    check_not_base(registry, image_name, base_image)
    secret = dockerconfig / SECRET_KEY
    if not secret.is_file():
        raise InputError(f"workspace dockerconfig has no key {SECRET_KEY}", file=str(dockerconfig),
                         fix="bind it to a Secret of type kubernetes.io/dockerconfigjson "
                         "(`kubectl create secret docker-registry ...`)")
    try:
        check_authfile(secret)
    except InputError as exc:
        raise InputError(f"workspace dockerconfig: {exc.message}", file=str(secret),
                         fix=exc.fix) from None
    if ca_dir is not None:
        ca_files(ca_dir)


# What each placeholder of an image name template can become (lower-cased): a model name (no
# `/`, `:` or `@`), a version number, a UUID.
_PLACEHOLDER_VALUES = {"Name": r"[^/:@]+", "Version": r"[0-9]+", "RandomUUID": r"[0-9a-f-]+"}


def _template_repository(template: str) -> re.Pattern[str]:
    """What the repository part of `template`'s rendered names can be, as a pattern."""
    from packager.imageref import _PLACEHOLDER_RE

    # The tag starts at the last `:` after the last `/` (placeholders hold neither).
    head, sep, tail = template.rpartition("/")
    if ":" in tail:
        template = head + sep + tail[:tail.rindex(":")]
    parts, last = [], 0
    for m in _PLACEHOLDER_RE.finditer(template):
        parts.append(re.escape(template[last:m.start()].lower()))
        parts.append(_PLACEHOLDER_VALUES.get(m.group(1), r"[^/:@]+"))
        last = m.end()
    parts.append(re.escape(template[last:].lower()))
    return re.compile("".join(parts))


def check_not_base(registry: str, image_name: str, base_image: str) -> None:
    """Refuse a push target in the base image's repository for *any* model name the template
    can take: with the build cache bound, the next run would find this run's image under the
    base's name, and with one Secret for pull and push the mirror's base tag could be replaced.
    (`package` and `push` refuse the actual names again.)"""
    from packager.basechoice import split_base_source
    from packager.imageref import RESERVED_REPOSITORY, canonical_repository, parse_reference

    name, _ = split_base_source(base_image)
    base = parse_reference(name).repository
    canonical = canonical_repository(name)
    # Docker Hub's library images answer to docker.io/NAME too.
    names = {base, canonical, canonical.replace("docker.io/library/", "docker.io/", 1)}
    prefix = re.escape(registry.rstrip("/").lower() + "/")
    repository = _template_repository(image_name)
    if any(re.fullmatch(prefix + repository.pattern, n) for n in names):
        raise _param_error("imageName", image_name, f"pushed under registry {bounded(registry)} "
                           f"it can name the base image's repository {bounded(base)}",
                           "push model images to a path of their own (registry: e.g. "
                           "registry.internal/models), never to the mirror the base comes from")
    if repository.fullmatch(RESERVED_REPOSITORY):
        raise _param_error("imageName", image_name, f"it can name {RESERVED_REPOSITORY}, the "
                           "repository of the packager's own weights images",
                           "choose another name")


REACH_TIMEOUT = 15.0


def _host_port(reference: str) -> tuple[str, int] | None:
    """The registry host and port an image reference or registry param names; None for Docker
    Hub (a bare name) and image archives."""
    first, sep, _ = reference.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        return None
    # `[::1]:5000` (an IPv6 literal in brackets, as image references write it), or host[:port].
    m = re.fullmatch(r"\[(?P<v6>[0-9A-Fa-f:.%]+)\](?::(?P<p6>[0-9]{1,5}))?"
                     r"|(?P<host>[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?", first)
    if m is None:
        return None
    host, port = (m["v6"], m["p6"]) if m["v6"] is not None else (m["host"], m["port"])
    return host, int(port) if port else 443


def reach_registries(registry: str, base_image: str,
                     environ: Mapping[str, str] | None = None) -> None:
    """A TCP connection to the push registry and the base image's registry, or InputError
    naming the param (the build would fail after minutes otherwise). Behind an HTTPS proxy
    (HTTPS_PROXY set in the step) the registries are not reached directly: nothing is probed."""
    import os
    import socket

    env = os.environ if environ is None else environ
    if env.get("HTTPS_PROXY") or env.get("https_proxy"):
        return

    targets = [("registry", registry + "/x")]
    if not base_image.startswith(("oci-archive:", "docker-archive:", "docker-daemon:")):
        targets.append(("baseImage", base_image))
    for param, reference in targets:
        where = _host_port(reference)
        if where is None:
            continue
        try:
            socket.create_connection(where, timeout=REACH_TIMEOUT).close()
        except OSError as exc:
            raise InputError(f"param {param}: the registry {where[0]}:{where[1]} cannot be reached "
                             f"from the cluster ({exc.strerror or type(exc).__name__})",
                             fix="check the name and port, DNS, and the namespace's egress "
                             "policy and proxies") from None


def ca_files(ca_dir: Path) -> list[Path]:
    """The PEM files of a mounted ConfigMap or Secret (`kubectl create configmap NAME
    --from-file=ca.crt`): each key a symlink into `..data`; the dot entries are Kubernetes' own."""
    fix = ("bind the ca workspace to a ConfigMap or Secret holding the registry's CA "
           "certificate(s) in PEM, e.g. `kubectl create configmap registry-ca --from-file=ca.crt`")
    if not ca_dir.is_dir():
        raise InputError("workspace ca is not a directory", file=str(ca_dir), fix=fix)
    found = []
    for entry in sorted(ca_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.stat().st_size > CA_BUNDLE_MAX:
            raise InputError(f"workspace ca: {entry.name} is larger than {CA_BUNDLE_MAX} bytes",
                             file=str(entry), fix=fix)
        if b"-----BEGIN CERTIFICATE-----" not in entry.read_bytes():
            raise InputError(f"workspace ca: {entry.name} holds no PEM certificate",
                             file=str(entry), fix=fix)
        found.append(entry)
    if not found:
        raise InputError("workspace ca holds no certificate file", file=str(ca_dir), fix=fix)
    return found


def result_object(text: str) -> dict[str, str]:
    """result.json's declared properties, each a string of at most VALUE_MAX characters."""
    from packager.result import ResultDocument

    ResultDocument.from_json(text)  # only the document this tool writes
    doc = json.loads(text)
    out: dict[str, str] = {}
    for key in RESULT_PROPERTIES:
        value = doc.get(key, "")
        if not isinstance(value, str) or len(value) > VALUE_MAX:
            raise InputError(f"result.json's {key} is not a string of at most {VALUE_MAX} "
                             "characters", fix="package again with a shorter image name")
        out[key] = value
    return out


def write_results(out: Path, result_file: Path, digest_file: Path) -> dict[str, str]:
    from packager.executor.images import registry
    from packager.executor.verify import load_result

    load_result(out)  # result.json readable, and this tool's
    obj = result_object((out / "result.json").read_text(encoding="utf-8"))
    base_digest = registry.get(obj["builder"]).manifest_digest(obj["base_image"]) or ""
    if not base_digest:
        raise InputError(f"the base image {bounded(obj['base_image'])} has no manifest digest in "
                         f"{obj['builder']}'s storage", fix="run tekton-results in the build "
                         "Task, after package, on the same storage")
    values = {"RESULT": json.dumps(obj, separators=(",", ":")), "BASE_IMAGE_DIGEST": base_digest}
    # push wrote IMAGE_URL (the pushed reference, result.json's image since) and IMAGE_DIGEST;
    # the entrypoint reports them again in this step's message.
    earlier = dict(zip(EARLIER_RESULTS, (obj["image"], obj["pushed_digest"]), strict=True))
    size = termination_message_size({**earlier, **values})
    if size > RESULTS_BUDGET:
        raise InputError(f"the results take {size} bytes; Tekton keeps a step's results in a "
                         f"termination message of at most {TERMINATION_MESSAGE_MAX} bytes",
                         fix="package again with a shorter image name or base image reference")
    # Tekton takes a result file's bytes as they are: no trailing newline.
    write_atomic(result_file, values["RESULT"])
    write_atomic(digest_file, base_digest)
    return obj
