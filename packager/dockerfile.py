"""Dockerfile text, rendered from `templates/` with Jinja2 (StrictUndefined)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.compiler
import jinja2.nodes
import jinja2.sandbox

from packager import __version__
from packager.backends import BY_KEY
from packager.basechoice import BaseImage
from packager.errors import InputError, PackagerError, bounded
from packager.inputs import CONDA_NAMES, REQUIREMENTS_NAME
from packager.layers import MODEL_REPOSITORY, WEIGHTS
from packager.plan import Layer, ModelPlan, RepositoryPlan
from packager.pyenv import (
    ENV_DIR,
    PIP_ENVS,
    PTH_TEXT,
    SELECT_ENV_PY,
    EnvOptions,
    conda_for_server,
    server_python,
)

CONDA_PACK_VERSION = "0.9.2"

# The weights get an image of their own, built from context/weights/ once per weights digest;
# the model image starts FROM it. The legacy builder (the docker SDK's) uploads the whole
# context on every build, so keeping gigabytes out of the model image's context is what makes
# a config-only rebuild take seconds, and the weight layers stay byte-identical for pushes.
WEIGHTS_CONTEXT = "weights"
WEIGHTS_REPOSITORY = "triton-packager/weights"
WEIGHTS_RECIPE = "1"
WEIGHTS_TEMPLATE = "weights.Dockerfile.j2"  # its COPY lines: packager.layers.WEIGHTS

# Anything that could end a Dockerfile instruction, continue it, quote out of a value or
# expand a variable. Values are validated upstream; this is the last line of defence.
# C1 controls (\x80-\x9f) and the Unicode line separators count too: \x85 is a line break to
# some readers and \x9b starts a terminal escape.
_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_UNSAFE = re.compile(f'[{_CONTROL}"\\\\$`]')


def templates_dir() -> Path:
    """`templates/` beside the package (source checkout) or inside it (installed wheel)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if (candidate / "Dockerfile.j2").is_file():
            return candidate
    raise FileNotFoundError("triton-packager templates are missing from the installation")


def _dq(value: object) -> str:
    """A double-quoted Dockerfile value (LABEL, ARG): refuses what could end or expand it."""
    text = str(value)
    if _UNSAFE.search(text):
        raise InputError(
            f"value {bounded(text)} contains a character that is not allowed in a Dockerfile "
            "(newline, quote, backslash, backtick or '$')",
            fix="remove the character from the model name, version or option",
        )
    return f'"{text}"'


def _sh(value: object) -> str:
    """One shell word in a RUN line: control characters refused (a newline would end the
    instruction), everything else single-quoted by shlex."""
    text = str(value)
    if re.search(f"[{_CONTROL}]", text):
        raise InputError(f"value {bounded(text)} contains a control character",
                         fix="remove newlines and other control characters from the option")
    return shlex.quote(text)


RENDER_SECONDS = 10.0
RENDER_STEPS = 1_000_000  # loop iterations and calls; Dockerfile.j2 takes a few hundred
RENDER_MAX_CHARS = 1 << 20  # a Dockerfile is kilobytes; a template that emits a megabyte loops


class _RenderTimeout(Exception):
    pass


class _Budget:
    """What one render may spend: steps (each loop iteration and each call) and time. Counted
    and checked where the template spends them, so no process-wide timer (SIGALRM,
    ITIMER_REAL) is touched: a caller's own alarm survives, and renders in any thread are
    bounded."""

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + RENDER_SECONDS

    def spend(self) -> None:
        self.steps += 1
        if self.steps > RENDER_STEPS:
            raise _RenderTimeout(f"rendering took more than {RENDER_STEPS} steps")
        if time.monotonic() > self.deadline:
            raise _RenderTimeout(f"rendering took longer than {RENDER_SECONDS:.0f}s")


_BUDGET: ContextVar[_Budget | None] = ContextVar("render_budget", default=None)


def _spend() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend()


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    """The `_counted` filter the compiler puts around every `{% for %}` iterable."""
    for item in items:
        _spend()
        yield item


class _CountingCodeGenerator(jinja2.compiler.CodeGenerator):
    """Wraps the iterable of every `{% for %}` in `_counted`, so each iteration is counted."""

    def visit_Template(self, node: jinja2.nodes.Template,
                       frame: jinja2.compiler.Frame | None = None) -> None:
        for loop in node.find_all(jinja2.nodes.For):
            loop.iter = jinja2.nodes.Filter(loop.iter, "_counted", [], [], None, None,
                                            lineno=loop.lineno)
        super().visit_Template(node, frame)


class _BoundedSandbox(jinja2.sandbox.SandboxedEnvironment):
    """Jinja2's sandbox bounds range() but not `"x" * 10**9`: intercept * and ** too (which
    also stops the compiler from folding such constants at compile time). Loops and calls
    (macros, recursive loops) spend the render's budget."""

    code_generator_class = _CountingCodeGenerator
    intercepted_binops = frozenset({"*", "**"})

    def call(self, __context: jinja2.runtime.Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        _spend()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: object,
                   right: object) -> object:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int) and \
                        len(seq) * n > RENDER_MAX_CHARS:
                    raise jinja2.exceptions.SecurityError("a repeated value would be too large")
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise jinja2.exceptions.SecurityError("an exponent above 64")
        return super().call_binop(context, operator, left, right)


def _render(template: jinja2.Template, values: dict[str, object]) -> str:
    """Render within a size cap and a budget of steps and time: a --template-dir template
    must not run forever or fill the memory."""
    token = _BUDGET.set(_Budget())
    try:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(values):
            size += len(chunk)
            if size > RENDER_MAX_CHARS:
                raise jinja2.exceptions.SecurityError(
                    f"the rendered text passed {RENDER_MAX_CHARS} characters")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)


@cache
def _environment(paths: tuple[str, ...]) -> jinja2.Environment:
    # A user's --template-dir comes first, so any template (or one backend's) can be replaced
    # while `{% extends "Dockerfile.j2" %}` and its blocks keep working.
    # Sandboxed: a --template-dir template cannot reach Python internals or loop forever.
    env = _BoundedSandbox(
        loader=jinja2.FileSystemLoader(list(paths)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["dq"] = _dq
    env.filters["_counted"] = _counted
    env.filters["sh"] = _sh
    return env


@dataclass(frozen=True)
class DockerfileSpec:
    text: str
    sha256: str
    base: BaseImage
    # Context files besides the layers: generated text (environment files included, as the
    # checked text that was read, never copied again from the input).
    context_texts: tuple[tuple[str, str], ...] = ()
    ca_bundle: bool = False
    weights_tag: str | None = None  # content-addressed weights image, built before the model's


_LABEL_KEY_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")


# The labels Dockerfile.j2 writes itself. A later LABEL of the same key wins in Docker, so a
# --label with one of these keys would silently replace what the image says it serves (and
# what `verify`, `push` and the weights image read back): refused, not overridden.
OWN_LABELS = frozenset({
    "org.opencontainers.image.title", "org.opencontainers.image.version",
    "org.opencontainers.image.description", "org.opencontainers.image.base.name",
})
OWN_LABEL_PREFIX = "io.triton-packager."


def check_labels(labels: tuple[tuple[str, str], ...]) -> None:
    seen: set[str] = set()
    for key, value in labels:
        if not _LABEL_KEY_RE.fullmatch(key):
            raise InputError(f"--label key {bounded(key)} is not a lower-case dotted name",
                             fix="use keys such as org.example.team=ml")
        if key in OWN_LABELS or key.startswith(OWN_LABEL_PREFIX):
            raise InputError(f"--label key {bounded(key)} is one the packager sets itself "
                             "(model name, version, backend or base image); it cannot be "
                             "overridden",
                             fix="use a key of your own namespace, such as org.example.model")
        if key in seen:
            raise InputError(f"--label key {bounded(key)} is given twice; the last would "
                             "silently win", fix="pass each --label key once")
        seen.add(key)
        _dq(value)


def _template_error(exc: Exception, template_dirs: tuple[str, ...]) -> InputError:
    where = getattr(exc, "filename", None) or getattr(exc, "name", None) or "a template"
    line = getattr(exc, "lineno", None)
    origin = "--template-dir" if template_dirs else "the built-in templates"
    return InputError(
        f"template {where}{f':{line}' if line else ''} ({origin}) cannot be rendered: "
        f"{bounded(getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}', 200, quote=False)}",
        file=template_dirs[0] if template_dirs else None,
        fix="fix the template; it may use the variables of the built-in Dockerfile.j2 and "
        "extend it with {% extends \"Dockerfile.j2\" %}",
    )


def weights_key(plan: RepositoryPlan, base: BaseImage) -> str:
    """Names the weights image by what is in it: the base image reference and every weight
    file's destination, mode and content digest (the base's ID is checked at build time)."""
    h = hashlib.sha256(f"weights {WEIGHTS_RECIPE}\n{base.ref}\n".encode())
    for e in plan.weights():
        h.update(f"{e.dest}\t{e.mode & 0o111:o}\t{e.size}\t{e.sha256}\n".encode())
    return h.hexdigest()


def _env_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PipEnv:
    """A builder stage installing one distinct requirements.txt to `path`, for `models`."""

    stage: str
    path: str
    context_file: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class CondaEnv:
    """A builder stage creating one distinct conda environment, unpacked at each of `paths`."""

    stage: str
    context_file: str
    models: tuple[str, ...]
    paths: tuple[str, ...]


def _python_envs(plan: RepositoryPlan, base: BaseImage, env_options: EnvOptions
                 ) -> tuple[list[PipEnv], list[CondaEnv], list[tuple[str, str]]]:
    """One builder stage per distinct requirements.txt and conda.yaml (models with the same
    file share it): the stages' template values, and the context files they read."""
    pip: dict[str, PipEnv] = {}
    conda: dict[str, CondaEnv] = {}
    texts: list[tuple[str, str]] = []
    envs_map: dict[str, str] = {}
    for m in plan.models:
        if m.backend_key != "python":
            continue
        if REQUIREMENTS_NAME in m.env_files:
            text = m.env_text(REQUIREMENTS_NAME)
            key = _env_key(text)
            if key not in pip:
                # Numbered, not named by content: the build cache keys on the file's bytes.
                n = len(pip) + 1
                ctx = f"env/requirements-{n}.txt"
                pip[key] = PipEnv(f"python-requirements-{n}", f"{PIP_ENVS}/{n}", ctx, ())
                texts.append((ctx, text))
            pip[key] = dataclasses.replace(pip[key], models=(*pip[key].models, m.model_name))
            envs_map[f"{MODEL_REPOSITORY}/{m.model_name}"] = pip[key].path
        conda_file = next((n for n in CONDA_NAMES if n in m.env_files), None)
        if conda_file is not None:
            text = conda_for_server(m.env_text(conda_file),
                                    server_python(base, env_options.python_version),
                                    file=conda_file)
            key = _env_key(text)
            if key not in conda:
                n = len(conda) + 1
                ctx = f"env/conda-{n}.yaml"
                conda[key] = CondaEnv(f"conda-env-{n}", ctx, (), ())
                texts.append((ctx, text))
            conda[key] = dataclasses.replace(
                conda[key], models=(*conda[key].models, m.model_name),
                paths=(*conda[key].paths, f"{MODEL_REPOSITORY}/{m.model_name}/{ENV_DIR}"))
    if pip:
        texts += [("env/select_env.py", SELECT_ENV_PY), ("env/triton-packager.pth", PTH_TEXT),
                  ("env/envs.json", json.dumps(envs_map, indent=2, sort_keys=True) + "\n")]
    return list(pip.values()), list(conda.values()), texts


def render_dockerfile(
    plan: RepositoryPlan | ModelPlan,
    base: BaseImage,
    env_options: EnvOptions | None = None,
    labels: tuple[tuple[str, str], ...] = (),
    template_dirs: tuple[str, ...] = (),
) -> DockerfileSpec:
    """Pure given the templates: the same plan, base, options and templates give the same text."""
    if isinstance(plan, ModelPlan):
        plan = RepositoryPlan((plan,))
    env_options = env_options or EnvOptions()
    env_options.check()
    check_labels(labels)
    first = plan.models[0]
    # One backend's template when all models share it; python.j2 (environments) when any
    # model is a Python one.
    kinds = list(dict.fromkeys(m.backend_key for m in plan.models if m.backend_key != "ensemble"))
    key = kinds[0] if len(kinds) == 1 else ("python" if "python" in kinds else "default")
    backend = BY_KEY[first.backend_key]
    env = _environment((*template_dirs, str(templates_dir())))
    name = f"backends/{key}.j2"
    try:
        template = env.get_template(name if name in env.list_templates()
                                    else "backends/default.j2")
    except jinja2.TemplateError as exc:
        raise _template_error(exc, template_dirs) from None
    pip_envs, conda_envs, texts_list = _python_envs(plan, base, env_options)
    weights_tag = (f"{WEIGHTS_REPOSITORY}:{weights_key(plan, base)[:64]}"
                   if plan.weights() else None)
    uses_env = bool(pip_envs or conda_envs)
    models = [dict(name=m.model_name, versions=",".join(map(str, m.versions or (m.version,))),
                   backend=m.backend_key) for m in plan.models]
    try:
        text = _render(template, dict(
            packager_version=__version__,
            name=first.model_name,
            version=first.version,
            models=models,
            backend=backend,
            base=base,
            layers=[layer.value for layer in plan.layers() if layer is not Layer.WEIGHTS],
            from_ref=weights_tag or base.ref,
            weights_tag=weights_tag,
            model_repository=MODEL_REPOSITORY,
            health_tool=base.health_tool,
            requirements_envs=pip_envs,
            conda_envs=conda_envs,
            ca_bundle=env_options.ca_bundle and uses_env,
            channels=list(env_options.conda_channels),
            micromamba_url=env_options.micromamba_url,
            conda_pack_version=CONDA_PACK_VERSION,
            extra_labels=list(labels),
        ))
    except PackagerError:
        raise  # a value refused by the dq/sh filters, or Interrupted by a signal
    except Exception as exc:  # a user template can fail in any way: 1/0, range(10**9), ...
        raise _template_error(exc, template_dirs) from None
    texts: tuple[tuple[str, str], ...] = tuple(texts_list)
    if weights_tag is not None:
        weight_models = sorted({e.dest.split("/", 1)[0] for e in plan.weights()})
        try:
            weights = _render(env.get_template(WEIGHTS_TEMPLATE), dict(
                packager_version=__version__, name=first.model_name, base=base,
                model_repository=MODEL_REPOSITORY, weights_tag=weights_tag,
                weight_models=weight_models, weights=WEIGHTS))
        except PackagerError:
            raise
        except Exception as exc:  # a --template-dir may replace this template too
            raise _template_error(exc, template_dirs) from None
        texts += (
            (f"{WEIGHTS_CONTEXT}/Dockerfile", weights),
            (f"{WEIGHTS_CONTEXT}/.dockerignore", "Dockerfile\n.dockerignore\n"),
            # The model image's build never uploads the weights: they are in its FROM image.
            (".dockerignore", f"{WEIGHTS_CONTEXT}/\n"),
        )
    # The weights Dockerfile follows from the FROM line's content-addressed tag: hashing the
    # model's Dockerfile covers both.
    return DockerfileSpec(
        text, hashlib.sha256(text.encode()).hexdigest(), base, texts,
        ca_bundle=env_options.ca_bundle and uses_env,
        weights_tag=weights_tag,
    )


_FROM_RE = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.M | re.I)


def base_images(dockerfile: str) -> list[str]:
    """The images a Dockerfile starts FROM, in order, without its own stages and `scratch`."""
    stages: set[str] = set()
    bases: list[str] = []
    for m in _FROM_RE.finditer(dockerfile):
        ref, alias = m.group(1), m.group(2)
        if ref.lower() != "scratch" and ref not in stages and ref not in bases:
            bases.append(ref)
        if alias:
            stages.add(alias)
    return bases
