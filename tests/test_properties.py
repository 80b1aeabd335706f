"""Property-based tests (Hypothesis) of the packager's trust rules on the package path.

Every user-controlled value -- manifest, config.pbtxt, options, image names, file names,
requirements.txt -- is drawn from arbitrary text (control characters, quotes, YAML and Jinja
syntax, non-UTF-8 names) and from valid values with one hostile fragment spliced in. The
packager must either refuse it with an InputError (exit 2, nothing written) or produce output
whose structure no value can change.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shlex
import stat
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

from packager.analysis import HEALTHCHECK_CHOICES, Options, analyze, dockerfile_for, image_name_for
from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.errors import InputError
from packager.executor.reader import read_input
from packager.imageref import REFERENCE_RE, parse_reference, render_image_name
from packager.manifest import NAME_MAX, NAME_RE, VERSION_MAX
from packager.modelconfig import parse_config
from packager.pyenv import EnvOptions, check_requirements


def budget(examples: int) -> settings:
    """Sized so the whole file runs in well under a minute on two cores. No example database:
    it would be written into the checkout (.hypothesis/ is not ignored); the failures found so
    far are pinned with @example instead."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


MESSAGE_MAX = 1000  # an InputError is one short message, whatever the size of the input
STDERR_MAX = 2000

# A config.pbtxt without a name line, so any manifest name is consistent with it.
CONFIG = "\n".join(ln for ln in PYTHON_CONFIG.format(name="x").splitlines()
                   if not ln.startswith("name:")) + "\n"
PY_MODEL = {"model.py": PYTHON_MODEL, "config.pbtxt": CONFIG}


# -- strategies -----------------------------------------------------------------------------
# st.text's default alphabet covers every Unicode category but surrogates: C0/C1 control
# characters, line and paragraph separators, bidi overrides, non-BMP characters.
ANY_TEXT = st.text(max_size=60)
# What breaks out of a Dockerfile value, a shell word, a YAML scalar or a template.
HOSTILE = st.sampled_from([
    "\n", "\r", "\r\n", "\t", "\x00", "\x1b[31m", "\x7f", "\x85", "\x9b", "\u2028", "\u202e",
    '"', "'", "\\", "\\\n", "$", "${HOME}", "$(id)", "`id`", " ", "#", ";", "&&", "|", "=",
    "\nRUN id", '"\nRUN id\n#', "{{", "}}", "{%", "{#", "/", "..", ":", "@", "?", "*", "~",
])


def splice(base: str, fragment: str, at: int) -> str:
    i = at % (len(base) + 1)
    return base[:i] + fragment + base[i:]


def near(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid value with hostile fragments spliced in. Purely random text is refused by the
    first regex it meets, so without these the 'accepted' branch would hardly ever run."""
    return st.builds(splice, valid, st.lists(HOSTILE, min_size=1, max_size=3).map("".join),
                     st.integers(0, 1 << 16))


def values(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(ANY_TEXT, valid, near(valid))


def check_error(err: InputError) -> None:
    """A refusal is a short message: a 300 kB value must not flood the terminal."""
    assert len(str(err)) <= MESSAGE_MAX, f"{len(str(err))}-character message: {str(err)[:300]}..."


def model_dir(root: Path, extra: dict[str, str | bytes | None]) -> Path:
    return write_tree(root / "model", {**PY_MODEL, **extra})


# -- 1. the manifest ------------------------------------------------------------------------
MANIFEST = "odahuflow.model.yaml"
YAML_FRAGMENTS = st.sampled_from([
    "name: ", "version: ", "&a ", "*a", "[", "]", "{", "}", ": ", "- ", "? ", "!!python/object:os.system",
    "!!python/object/apply:os.system ['id']", "!!int ", "!!str ", "!!binary ", "!!float ",
    "!!timestamp ", "!!set ", "!!bool ", "010", "0o10", "1:30", "0x1F", "0b11", "1_000", "yes", "no",
    "on", "~", "null", "1e3", ".inf", ".nan", "9" * 40, "9" * 5000, "\n", "\n  ", "\t", "'", '"',
    "\\", "#", "%YAML 1.1\n---\n", "---\n", "...\n", "\x00", "\ufeff", "<<: ", "name: a\nname: b",
])
DEEP = st.integers(1, 3000).flatmap(lambda n: st.sampled_from([
    "[" * n + "]" * n, "{a: " * n + "1" + "}" * n, "".join(f"{' ' * i}k{i}:\n" for i in range(min(n, 400))),
    "- " * min(n, 400) + "x",
]))
MANIFEST_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(YAML_FRAGMENTS, st.text(max_size=8)), max_size=30).map("".join),
    DEEP,
)
# Version literals that YAML 1.1 (PyYAML's default) reads as numbers other than they look.
TRAP_VERSIONS = ["010", "0o10", "1:30", "0x1F", "0b11", "1_000", "08", "+5", "1e3", "1.0", "0010"]
VERSION_LITERAL = st.one_of(
    st.sampled_from(TRAP_VERSIONS),
    st.builds(lambda tag, lit: tag + lit, st.sampled_from(["", "!!int ", "!!str ", "!!float "]),
              st.sampled_from(TRAP_VERSIONS) | st.from_regex(r"[+-]?[0-9_:xob]{1,8}", fullmatch=True)),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([0, 1, VERSION_MAX, VERSION_MAX + 1, 10**40]),
    st.floats(), st.text(max_size=30), st.from_regex(NAME_RE, fullmatch=True),
    st.sampled_from(["010", "1:30", "0x1F", "yes", "~", "Model", "my model", "a/b", ".."]),
)
MANIFEST_DOCS = st.dictionaries(
    st.sampled_from(["name", "version", "output", "Name", "extra"]) | st.text(max_size=10),
    SCALARS, max_size=4)


def analyze_manifest(text: str) -> object:
    """analyze() of a valid Python model with this manifest: its ModelMeta, or the InputError."""
    with tempfile.TemporaryDirectory() as tmp:
        root = model_dir(Path(tmp), {MANIFEST: text})
        try:
            return analyze(read_input(root)).meta
        except InputError as err:
            check_error(err)
            return err


def check_meta(meta: object) -> None:
    if isinstance(meta, InputError):
        return
    name, version = meta.name, meta.version  # type: ignore[attr-defined]
    assert NAME_RE.fullmatch(name) and len(name) <= NAME_MAX, name
    assert type(version) is int and 1 <= version <= VERSION_MAX, version


@budget(150)
@given(MANIFEST_TEXT)
@example("name: [unclosed\n")
@example("a: &a [*a, *a]\nb: *a\n")
@example("!!python/object/apply:os.system ['id']\n")
@example("version: " + "9" * 5000 + "\n")
@example("[" * 3000 + "]" * 3000)
@example("version: !!int\n")  # found by this test: IndexError from PyYAML's 1.1 int constructor
@example("!!bool")  # found by this test: KeyError
@example("!!timestamp x")  # found by this test: AttributeError
def test_manifest_text_is_read_or_refused(text: str) -> None:
    check_meta(analyze_manifest(text))


@budget(60)
@given(MANIFEST_DOCS)
def test_manifest_document_is_read_exactly_or_refused(doc: dict[object, object]) -> None:
    meta = analyze_manifest(yaml.safe_dump(doc))
    check_meta(meta)
    if isinstance(meta, InputError):
        return
    # Accepted values come back as written: no coercion of floats, booleans or strings. An
    # integer longer than 18 digits stays a string by design (safeyaml), so `name: <19 digits>`
    # is the name those digits spell.
    name = doc.get("name", "model")
    expected = str(name) if type(name) is int else name
    assert meta.name == expected  # type: ignore[attr-defined]
    if "version" in doc:
        # An int, or a string of its canonical digits (`version: '3'`) -- never a float or bool.
        assert type(doc["version"]) in (int, str), doc
        assert str(doc["version"]) == str(meta.version)  # type: ignore[attr-defined]


@budget(60)
@given(VERSION_LITERAL)
@example("!!int 010")  # YAML 1.1's int constructor: octal 8 (found by this test)
@example("!!int 1:30")  # YAML 1.1's int constructor: sexagesimal 90 (found by this test)
def test_manifest_version_is_never_reinterpreted(literal: str) -> None:
    meta = analyze_manifest(f"name: model\nversion: {literal}\n")
    check_meta(meta)
    if isinstance(meta, InputError):
        return
    # Accepted only when written as a plain decimal integer (tagged or not), and then as that
    # integer: `010` is never 8, `1:30` never 90, `0x1F` never 31.
    digits = literal.removeprefix("!!int ").removeprefix("!!str ")
    # Canonical digits only: `010` (octal in YAML 1.1, decimal in 1.2) and `+5` are refused.
    assert re.fullmatch(r"[1-9][0-9]*", digits), f"{literal!r} accepted as {meta.version}"  # type: ignore[attr-defined]
    assert meta.version == int(digits)  # type: ignore[attr-defined]


# -- 2. config.pbtxt ------------------------------------------------------------------------
VALID_CONFIG = PYTHON_CONFIG.format(name="model")
PBTXT_FRAGMENTS = st.sampled_from([
    "{", "}", "[", "]", "<", ">", ":", ",", ";", '"', "'", "\\", "\\x", "\\xff", "\\377", "\\u12",
    "\\U0010ffff", "#", "\n", "\x00", "\u2028", "name", "dims", "-1", "0x7fffffffffffffffff",
    "9" * 400, "1e999", "-inf", "nan", "TYPE_BOGUS", "TYPE_STRING", "max_batch_size: -2",
    'parameters { key: "k" value { string_value: "v" } }', "[" * 500, "{" * 500,
    "input { " * 200, "version_policy { specific { versions: [-1, 0, 9223372036854775808] } }",
    "instance_group [ { kind: KIND_GPU count: -5 } ]", "dynamic_batching { }",
    "data_type: 32", "data_type: -1", "kind: 2147483648",  # enums by number: open in proto3
    "version_policy { specific { } }", "version_policy: { latest: { num_versions: 0 } }",
    "version_policy { latest { } }", "version_policy { latest { num_versions: 2 } }",
    "dims: [ 0 ]", "dims: [ -2 ]", 'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]',
])


def mutate(base: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (position, deletion length, insertion) edits to a valid config."""
    text = base
    for at, cut, insert in edits:
        i = at % (len(text) + 1)
        text = text[:i] + insert + text[i + cut:]
    return text


CONFIG_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(PBTXT_FRAGMENTS, st.text(max_size=6)), max_size=30).map(" ".join),
    st.builds(mutate, st.just(VALID_CONFIG),
              st.lists(st.tuples(st.integers(0, 1 << 12), st.integers(0, 8),
                                 PBTXT_FRAGMENTS | st.text(max_size=4)), min_size=1, max_size=5)),
)


@budget(200)
@given(CONFIG_TEXT)
@example("a" * 2000 + ": 1\n")  # found by this test: protobuf's message quotes the whole token
# found by this test: ValueError from DataType.Name, text_format keeps an open enum's unknown number
@example(VALID_CONFIG.replace('OUTPUT0" data_type: TYPE_FP32', 'OUTPUT0" data_type:32'))
@example("instance_group { kind: 2147483648 }")  # ValueError from text_format setting the field
@example(VALID_CONFIG + "version_policy { specific { } }\n")  # Triton refuses: serves nothing
@example(VALID_CONFIG + "version_policy { latest { num_versions: 0 } }\n")
@example(VALID_CONFIG + "version_policy { latest { } }\n")
@example(VALID_CONFIG + "max_batch_size: -1\n")
@example(VALID_CONFIG.replace("dims: [ 4 ]", "dims: [ 0 ]", 1))
@example(VALID_CONFIG.replace("dims: [ 4 ]", "dims: [ -2 ]", 1))
@example(VALID_CONFIG.replace("dims: [ 4 ]", "dims: [ -1 ]", 1))  # any size: loads
@example(VALID_CONFIG.replace("OUTPUT0", "INPUT0", 1))  # an output named like the input: loads
@example(VALID_CONFIG + 'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
@example(VALID_CONFIG.replace("data_type: TYPE_FP32", "data_type: 99", 1))
@example(VALID_CONFIG + "version_policy { latest { num_versions: 1 } }\n")  # and its neighbour
def test_config_is_parsed_or_refused(text: str) -> None:
    why = triton_refuses(text)
    try:
        parse_config(text)
    except InputError as err:
        check_error(err)
        assert why is not None, f"refused a config Triton loads:\n{text}\n{err}"
        return
    assert why is None, f"accepted a config Triton refuses ({why}):\n{text}"


def triton_refuses(text: str) -> str | None:
    """The oracle, written apart from parse_config: why Triton refuses this config at load for a
    reason the file alone shows (model_config_utils.cc's ValidateModelConfig), or None."""
    from google.protobuf import text_format

    from packager.modelconfig import model_config_pb2 as pb  # Triton's schema, not our checks

    msg = pb.ModelConfig()
    try:
        text_format.Parse(text, msg)
    except (text_format.ParseError, ValueError):
        return "not a ModelConfig"
    if msg.max_batch_size < 0:
        return "negative max_batch_size"
    if any(t.data_type not in pb.DataType.values() for t in (*msg.input, *msg.output)):
        return "a data_type that is no DataType"
    if any(d == 0 or d < -1 for t in (*msg.input, *msg.output) for d in t.dims):
        return "a dimension that is neither >= 1 nor -1"
    for group in (msg.input, msg.output):
        names = [t.name for t in group]
        if len(set(names)) != len(names):
            return "a tensor declared twice"
    policy = msg.version_policy
    if policy.WhichOneof("policy_choice") == "specific" and len(policy.specific.versions) == 0:
        return "version_policy specific with no versions"
    if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions == 0:
        return "version_policy latest with num_versions 0"
    return None


# -- 3. options reaching the Dockerfile -----------------------------------------------------
def instructions(dockerfile: str) -> list[tuple[str, list[str]]]:
    """(KEYWORD, shell words of the arguments) per instruction, as Docker splits the file:
    continuation lines joined, comment and blank lines dropped (also inside a continuation)."""
    out: list[tuple[str, list[str]]] = []
    pending = ""
    for line in dockerfile.split("\n"):
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        pending = ""
        out.append((keyword.upper(), shlex.split(args)))
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


def control_characters(text: str) -> list[str]:
    return sorted({c for c in text if unicodedata.category(c) == "Cc" and c != "\n"})


@dataclass(frozen=True)
class Slot:
    """One user-controlled value and how it reaches the packager.

    `marker` is how the benign value appears in the Dockerfile's words (None: the value is not
    rendered into the Dockerfile at all, e.g. file contents, so the words must not change)."""

    name: str
    benign: str
    values: st.SearchStrategy[str]
    apply: Callable[[str], tuple[dict[str, str | bytes | None], Options]]
    marker: str | None = None
    examples: tuple[str, ...] = field(default=())


# The environment files make the builder stages (and their RUN lines with channels) render.
ENV_FILES: dict[str, str | bytes | None] = {"conda.yaml": "dependencies:\n- numpy\n",
                                           "requirements.txt": "numpy==1.26\n"}
BASE = Options(base_image=LOCAL_CPU_IMAGE, labels=(("org.example.team", "ml"),))
URL = st.from_regex(r"https?://[A-Za-z0-9][A-Za-z0-9._~:/@%+-]{0,40}", fullmatch=True)
REQUIREMENT_LINES = st.sampled_from([
    "numpy==1.26", "requests>=2,<3", "pkg[extra]==1.0 ; python_version < '4'", "--pre",
    "x==1 --hash=sha256:abc", "--only-binary :all:", "# comment", "torch @ https://h.example/t.whl",
])
CONDA_DOCS = st.fixed_dictionaries({
    "name": st.text(max_size=10),
    "channels": st.lists(st.text(max_size=10), max_size=2),
    "dependencies": st.lists(st.one_of(
        st.sampled_from(["numpy", "python=3.11", "python", "python>=3.11", "pip",
                         "conda-forge::python=3.11"]),
        st.text(max_size=10),
        st.fixed_dictionaries({"pip": st.lists(REQUIREMENT_LINES | st.text(max_size=10), max_size=3)}),
    ), max_size=4),
}).map(lambda d: yaml.safe_dump(d, sort_keys=False))


def _env(**changes: object) -> Options:
    return Options(base_image=BASE.base_image, labels=BASE.labels, env=EnvOptions(**changes))  # type: ignore[arg-type]


SLOTS = [
    Slot("label-value", "zzbenignvalue", ANY_TEXT,
         lambda v: (ENV_FILES, Options(base_image=LOCAL_CPU_IMAGE, labels=(("org.example.v", v),))),
         marker="zzbenignvalue",
         # a\x85b: found by this test (C1 controls passed `dq`); a"b and "$: a quote alone, with
         # no newline, so a `dq` without '"' in its unsafe set is caught every run (issue 21)
         examples=("a\x85b", 'a"b', '"', 'x"$', "a\\b", "`id`")),
    Slot("label-key", "zzbenignkey", values(st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", fullmatch=True)),
         lambda k: (ENV_FILES, Options(base_image=LOCAL_CPU_IMAGE, labels=((k, "v"),))),
         marker="zzbenignkey"),
    Slot("conda-channel", "zzbenignchannel",
         values(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True) | URL),
         lambda c: (ENV_FILES, _env(conda_channels=("conda-forge", c))), marker="zzbenignchannel",
         examples=("conda-forge\n--channel evil", "x;id", "https://x/$(id)")),
    Slot("pip-index-url", "https://zzbenign.example/simple", values(URL),
         lambda u: (ENV_FILES, _env(pip_index_url=u))),
    Slot("micromamba-url", "https://zzbenign.example/mm", values(URL),
         lambda u: (ENV_FILES, _env(micromamba_url=u)), marker="https://zzbenign.example/mm",
         examples=('https://x/"\nRUN id',)),
    Slot("python-version", "3.11",
         values(st.from_regex(r"3\.[0-9]{1,2}", fullmatch=True)
                | st.from_regex(r"3\.\d{1,2}", fullmatch=True)),  # \d: any Unicode digit
         lambda p: (ENV_FILES, _env(python_version=p))),
    # Another base image may lack curl or have another Python: both are pinned here, so only
    # the name itself can differ.
    Slot("base-image", LOCAL_CPU_IMAGE,
         values(st.from_regex(REFERENCE_RE, fullmatch=True) | st.sampled_from([
             "nvcr.io/nvidia/tritonserver:24.05-py3", "nvcr.io/nvidia/tritonserver:24.05-pyt-python-py3",
             "ubuntu", "localhost:5000/a/b:c", "a@sha256:" + "0" * 64, "[::1]:5000/x:y"])),
         lambda b: (ENV_FILES, Options(base_image=b, healthcheck="none", labels=BASE.labels,
                                       env=EnvOptions(python_version="3.11"))),
         marker=LOCAL_CPU_IMAGE, examples=("ubuntu\nRUN id", "img:$TAG", "img:\u0663")),
    # "none" drops the HEALTHCHECK instruction by design; every other value must not matter.
    Slot("healthcheck", "auto",
         values(st.sampled_from(HEALTHCHECK_CHOICES)).filter(lambda h: h != "none"),
         lambda h: (ENV_FILES, Options(base_image=LOCAL_CPU_IMAGE, healthcheck=h))),
    Slot("model-name", "zzbenign",
         values(st.from_regex(NAME_RE, fullmatch=True).filter(lambda n: len(n) <= NAME_MAX)),
         lambda n: ({**ENV_FILES, MANIFEST: yaml.safe_dump({"name": n, "version": 1})}, BASE),
         marker="zzbenign", examples=("a\nFROM evil", "a$HOME")),
    Slot("requirements.txt", "numpy==1.26\n",
         st.lists(REQUIREMENT_LINES | ANY_TEXT | near(REQUIREMENT_LINES), max_size=5).map("\n".join),
         lambda r: ({**ENV_FILES, "requirements.txt": r}, BASE)),
    Slot("conda.yaml", "dependencies:\n- numpy\n", CONDA_DOCS | ANY_TEXT | near(CONDA_DOCS),
         lambda c: ({**ENV_FILES, "conda.yaml": c}, BASE)),
]


def render(slot: Slot, value: str) -> str:
    """The Dockerfile for a valid Python model (with both environment files) and this value."""
    files, options = slot.apply(value)
    with tempfile.TemporaryDirectory() as tmp:
        return dockerfile_for(analyze(read_input(model_dir(Path(tmp), files))), options).text


@cache
def benign_instructions(slot_name: str) -> list[tuple[str, list[str]]]:
    slot = next(s for s in SLOTS if s.name == slot_name)
    text = render(slot, slot.benign)
    assert slot.marker is None or slot.marker in text, f"{slot.marker!r} is not in the Dockerfile"
    return instructions(text)


def check_structure(slot: Slot, value: str) -> None:
    try:
        text = render(slot, value)
    except InputError as err:
        check_error(err)
        return
    assert not control_characters(text), f"control characters {control_characters(text)!r} rendered"
    expected = benign_instructions(slot.name)
    got = instructions(text)
    assert [k for k, _ in got] == [k for k, _ in expected], "the value changed the instructions"
    for (keyword, words), (_, benign) in zip(got, expected, strict=True):
        assert len(words) == len(benign), f"the value changed the number of words of {keyword}"
        # The value sits inside the words the benign value occupied, each as one whole shell
        # word (RUN lines included): it never becomes a word, an option or a command itself.
        want = benign if slot.marker is None else [w.replace(slot.marker, value) for w in benign]
        assert words == want, f"{keyword}: {words} != {want}"


@pytest.mark.parametrize("slot", SLOTS, ids=lambda s: s.name)
@budget(60)
@given(data=st.data())
def test_no_value_changes_the_dockerfile_structure(slot: Slot, data: st.DataObject) -> None:
    check_structure(slot, data.draw(slot.values, label=slot.name))


# The @example of the test above, per slot (Hypothesis cannot pin examples of st.data()).
@pytest.mark.parametrize(("slot", "value"), [(s, v) for s in SLOTS for v in s.examples],
                         ids=lambda x: x.name if isinstance(x, Slot) else repr(x))
def test_pinned_values_keep_the_dockerfile_structure(slot: Slot, value: str) -> None:
    check_structure(slot, value)


# -- 4. image names -------------------------------------------------------------------------
PROBE_UUID = "00000000-0000-4000-8000-000000000000"


def invalid_tag(value: str) -> bool:
    try:
        parse_reference(value, what="--tag", allow_digest=False)
    except InputError:
        return True
    return False


def invalid_template(value: str) -> bool:
    try:
        render_image_name(value, name="model", version=1, random_uuid=PROBE_UUID)
    except InputError:
        return True
    return False


TEMPLATES = st.sampled_from([
    "{{ Name * 99999999 }}", "{{ Name }}-{{ Version }}:{{ Unknown }}", "{%", "{% for x in y %}",
    "{{ Name.__class__ }}", "{{ Name }}:{{ RandomUUID }}{#", "{{Name}}:{{Version}}\nRUN id",
    "{{ Name }}:" + "x" * 200, "{{ Name }}" * 100, "{{ RandomUUID }}@sha256:" + "a" * 64, "",
])
TAG_VALUES = values(st.from_regex(REFERENCE_RE, fullmatch=True)).filter(invalid_tag)
TEMPLATE_VALUES = st.one_of(ANY_TEXT, TEMPLATES, near(TEMPLATES),
                            near(st.just("{{ Name }}-{{ Version }}:{{ RandomUUID }}"))
                            ).filter(invalid_template)


def run_cli(argv: list[str]) -> tuple[int, str, float]:
    err, started = io.StringIO(), time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue(), time.monotonic() - started


def check_refused_before_writing(option: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, out = model_dir(Path(tmp), {}), Path(tmp) / "out"
        # `--opt=value`: a value starting with '-' must not be read as another option.
        code, err, took = run_cli(["package", str(root), "--output", str(out), f"{option}={value}"])
        assert code == 2, err
        assert any(line.startswith("error: ") for line in err.splitlines()), err
        assert "Traceback" not in err and len(err) < STDERR_MAX, err[:500]
        assert took < 5, f"{took:.1f} s to refuse an image name"
        assert not out.exists(), "an invalid image name must be refused before the first write"


@budget(60)
@given(TAG_VALUES)
@example("")  # found by this test: an empty --tag counts as no --tag (`if options.tag:`)
@example("evil:1\nRUN rm -rf /")
@example("a@sha256:" + "0" * 64)
def test_invalid_tag_never_names_an_image(value: str) -> None:
    # The check the package phase runs before its first write, without the CLI: an empty tag
    # that slipped past it would go on to a Docker build, which the CLI test below must not start.
    with tempfile.TemporaryDirectory() as tmp:
        analysis = analyze(read_input(model_dir(Path(tmp), {})))
    with pytest.raises(InputError) as refused:
        image_name_for(analysis, Options(tag=value), PROBE_UUID)
    check_error(refused.value)


@budget(60)
@given(TAG_VALUES.filter(bool))  # "" would reach Docker today: see the test above
@example("evil:1\nRUN rm -rf /")
@example("-x")
def test_invalid_tag_is_refused_before_writing(value: str) -> None:
    check_refused_before_writing("--tag", value)


@budget(60)
@given(TEMPLATE_VALUES)
@example("{{ Name * 99999999 }}")
def test_invalid_image_name_template_is_refused_before_writing(value: str) -> None:
    check_refused_before_writing("--image-name", value)


# -- 5. file names --------------------------------------------------------------------------
def posix_name(raw: bytes) -> bool:
    """What a POSIX file system can hold as one name."""
    return 0 < len(raw) <= 255 and b"/" not in raw and b"\x00" not in raw and raw not in (b".", b"..")


NAMES = st.one_of(
    st.text(min_size=1, max_size=20).map(os.fsencode),
    st.binary(min_size=1, max_size=20),  # raw bytes: often not UTF-8
    st.sampled_from(["..a", "...", " ", " a ", "-rf", "--force", "\n", "a\nb", "a\rb", "$(id)", "*",
                     "~", "\u202e", "é", "e\u0301", ".git", "__pycache__", "result.json",
                     ".triton-packager-owned", ".triton-packager", "model.onnx", "conda.yaml",
                     "requirements.txt", "odahuflow.model.yaml", "x" * 255]).map(os.fsencode),
    st.just(b"\xff\xfe"),
).filter(posix_name)
EXTRA_ENTRIES = st.lists(st.tuples(st.lists(NAMES, min_size=1, max_size=3), st.booleans()),
                         min_size=1, max_size=4)


def add_entries(root: Path, entries: list[tuple[list[bytes], bool]]) -> None:
    """Create the drawn files/directories through bytes paths (names need not be UTF-8);
    an entry that collides with an existing one is skipped."""
    for parts, is_dir in entries:
        path = os.path.join(os.fsencode(root), *parts)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if is_dir:
                os.mkdir(path)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, b"x\n")
                os.close(fd)
        except (FileExistsError, NotADirectoryError):
            continue


def snapshot(top: bytes, skip: bytes) -> dict[bytes, tuple[int, str]]:
    """Every path under `top` but `skip`, with its type and mode and its content digest."""
    found: dict[bytes, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st_ = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st_.st_mode):
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            found[os.path.relpath(path, top)] = (st_.st_mode, digest)
    return found


@budget(80)
@given(EXTRA_ENTRIES)
@example([([b"\xff"], False)])
@example([([b"requirements.txt"], True)])  # found by this test: exit 3, EISDIR from the copy
@example([([b"a\nRUN id"], False)])
@example([([b"..a", b"-rf"], False), ([b" "], True)])
def test_any_file_names_are_packaged_inside_out_or_refused(entries: list[tuple[list[bytes], bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, out = model_dir(Path(tmp), {}), Path(tmp) / "out"
        write_tree(Path(tmp) / "neighbour", {"keep.txt": "not the packager's\n"})
        add_entries(root, entries)
        before = snapshot(os.fsencode(tmp), os.fsencode(out))
        code, err, _ = run_cli(["dockerfile", str(root), "--output", str(out)])
        assert code in (0, 2), err
        assert "Traceback" not in err and "internal error" not in err, err
        if code == 2:
            assert not out.exists(), "a refused input must leave no output"
        else:
            real_out = os.path.realpath(out)
            for dirpath, dirnames, filenames in os.walk(os.fsencode(out)):
                for name in dirnames + filenames:
                    real = os.path.realpath(os.path.join(dirpath, name))
                    assert real.startswith(os.fsencode(real_out) + b"/"), real
        after = snapshot(os.fsencode(tmp), os.fsencode(out))
        if code == 0:  # the output's lock file, beside it by design (lock.lock_for)
            after.pop(b".out.lock", None)
        assert after == before, "a file outside --output changed"


# -- 6. requirements.txt --------------------------------------------------------------------
REQUIREMENTS = st.lists(st.one_of(REQUIREMENT_LINES, ANY_TEXT, near(REQUIREMENT_LINES)),
                        max_size=8).map("\n".join)


# Lines the README says are refused: the oracle below must see each, and so must the check.
FORBIDDEN = {  # line: what the refusal says (the reason, not only that it is refused)
    "-r other.txt": "includes another requirements file",
    "--requirement=other.txt": "includes another file",
    "-c constraints.txt": "includes a constraints file",
    "-e .": "installs an editable path or URL", "--editable ./pkg": "installs an editable path",
    "-i https://mirror.example/simple": "sets its own package index",
    "--index-url https://m.example": "sets its own package index",
    "--extra-index-url=https://m": "sets its own package index",
    "-f https://h.example/links": "adds a find-links location",
    "--find-links ./wheels": "adds a find-links location",
    "--trusted-host h.example": "turns off TLS checks", "--no-index": "turns off the package index",
    "./local_pkg": "names a local path", "../up": "names a local path",
    "/abs/path.whl": "names a local path", "~/pkg": "names a local path",
    "pkg @ file:///tmp/p.whl": "names a local file", "file:../x": "names a local file",
    "numpy==${VERSION}": "expands an environment variable",
    "pkg @ https://u:pw@h.example/p.whl": "carries credentials in a URL ('h.example')",
    "git+https://tok@h.example/r.git": "carries credentials in a URL",
    "--unknown-option": "uses pip option '--unknown-option'",
    "numpy --install-option=--x": "uses per-requirement option '--install-option'",
}
FORBIDDEN_LINES = list(FORBIDDEN)


def pip_forbids(text: str) -> str | None:
    """The oracle, written apart from check_requirements: the first logical line (pip's own
    rules: `#` comments at the start or after a space, `\\` continuations) that reaches outside
    the input, carries a credential, or passes an option the packager does not, or None."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append((pending + line).strip())
        pending = ""
    lines.append(pending.strip())
    allowed = {"--pre", "--prefer-binary", "--require-hashes", "--only-binary", "--no-binary"}
    for line in filter(None, lines):
        option = line.split()[0].split("=", 1)[0]
        if "${" in line or "\x00" in line or "file:" in line.lower():
            return line
        if re.search(r"[a-z][a-z0-9+.-]*://[^/\s]*@", line, re.I):
            return line
        if option.startswith("-") and option not in allowed:
            return line
        if not option.startswith("-") and "://" not in line and line.startswith((".", "/", "~")):
            return line
        if any(o != "--hash" for o in re.findall(r"\s(--[a-z-]+)", line)) and \
                not option.startswith("-"):
            return line
    return None


@budget(150)
@given(st.lists(st.one_of(REQUIREMENT_LINES, ANY_TEXT, near(REQUIREMENT_LINES),
                          st.sampled_from(FORBIDDEN_LINES)), max_size=8).map("\n".join))
@example("numpy==1.26\n" + "\n".join(FORBIDDEN_LINES[:1]))
@example("# -r commented.txt\nnumpy # ${NOT_EXPANDED}\n")  # comments are not lines
@example("numpy==1.26 \\\n  --hash=sha256:ab")  # a continuation
def test_requirements_are_checked_or_refused(text: str) -> None:
    forbidden = pip_forbids(text)
    try:
        check_requirements(text)
    except InputError as err:
        check_error(err)
        return
    assert forbidden is None, f"accepted {forbidden!r} in:\n{text}"


@pytest.mark.parametrize("line", FORBIDDEN_LINES)
def test_each_forbidden_requirement_line_is_refused(line: str) -> None:
    """Deterministic: every rule fails a test of its own when its check is removed."""
    assert pip_forbids(line) == line
    with pytest.raises(InputError) as refused:
        check_requirements(f"numpy==1.26\n{line}\n")
    check_error(refused.value)
    assert "requirements.txt:2" in str(refused.value)
    assert FORBIDDEN[line] in str(refused.value), str(refused.value)


# Userinfo characters a URL may hold (RFC 3986), without '@' (it ends the userinfo).
USERINFO = st.text(st.sampled_from("abcXYZ019-._~!$&'()*+,;=%"), min_size=1, max_size=10)
PASSWORD = st.text(st.sampled_from("abcXYZ019-._~!$&'()*+,;=%:"), min_size=4, max_size=12).map(
    lambda p: "Pw" + p)  # starts with a fixed prefix so it cannot hide in other message text
CREDENTIAL_PREFIX = st.sampled_from([
    "", "pkg @ ", "git+", "-i ", "--index-url ", "--extra-index-url=", "-f ", "--find-links ",
    "-e git+", "-r ", "--pre ", "--prefer-binary ", "--only-binary :all: ", "pkg==1 --hash=sha256:ab ",
    "numpy ; python_version > '3' and ",
])


@budget(150)
@given(prefix=CREDENTIAL_PREFIX | st.text(st.characters(blacklist_characters="#\n\r"), max_size=10),
       scheme=st.sampled_from(["https", "http", "HTTPS", "ftp", "git+ssh", "s3"]),
       user=USERINFO, password=PASSWORD,
       host=st.from_regex(r"[a-z0-9.-]{1,15}(:[0-9]{1,5})?(/[a-z0-9./]{0,10})?", fullmatch=True),
       before=st.lists(REQUIREMENT_LINES, max_size=2), after=REQUIREMENTS)
@example(prefix="--pre ", scheme="https", user="u", password="Pwsecret", host="pypi.example",
         before=[], after="")  # found by this test: option lines are not checked for credentials
def test_credentials_in_requirements_are_refused_without_echo(
        prefix: str, scheme: str, user: str, password: str, host: str,
        before: list[str], after: str) -> None:
    assume(password not in prefix)  # the password must come from the URL alone
    line = f"{prefix}{scheme}://{user}:{password}@{host}"
    text = "\n".join([*before, line, after])
    with pytest.raises(InputError) as refused:
        check_requirements(text)
    assert password not in str(refused.value), str(refused.value)
    check_error(refused.value)
