"""Python-backend environments: requirements.txt and conda.yaml, matched to the server's Python.

The Python backend runs model.py in its stub's interpreter; packages built for another Python
are silently unusable (triton-facts.md 4.2-4.3). So a conda.yaml that pins another Python is
refused before any build, and one without a pin gets the server's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from packager import safeyaml
from packager.basechoice import LOCAL_CPU_REPOSITORY, BaseImage
from packager.errors import InputError, bounded

ENV_DIR = "python-env"
# pip environments of Python models: one directory per distinct requirements.txt.
PIP_ENVS = "/opt/triton-packager/envs"
SELECT_ENV_FILE = "/opt/triton-packager/select_env.py"
ENVS_MAP_FILE = "/opt/triton-packager/envs.json"
# A .pth line that starts with `import` is run by site.py at every interpreter start, the
# Python backend's stub included (it does not pass PYTHONPATH on).
PTH_TEXT = f"import sys; exec(open({SELECT_ENV_FILE!r}).read())\n"
SELECT_ENV_PY = f"""\
# Written by triton-packager. Run from triton-packager.pth at every Python start: in a Python
# backend stub (argv: the stub, then the model's model.py), put that model's own pip packages
# first on sys.path. Other processes and models without packages are left as they are.
def _triton_packager_select_env():
    import json
    import site
    import sys
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = f.read().split(b"\\0")
        if len(argv) < 2 or not argv[0].endswith(b"triton_python_backend_stub"):
            return
        model = argv[1].decode("utf-8", "surrogateescape")
        with open({ENVS_MAP_FILE!r}, encoding="utf-8") as f:
            envs = json.load(f)
    except (OSError, ValueError):
        return
    for model_dir, env in envs.items():
        if model.startswith(model_dir + "/"):
            sys.path.insert(0, env)
            site.addsitedir(env)  # the environment's own .pth files
            return


_triton_packager_select_env()
del _triton_packager_select_env
"""  # beside config.pbtxt, referenced as $$TRITON_MODEL_DIRECTORY/python-env
EXECUTION_ENV_PATH = "EXECUTION_ENV_PATH"
MICROMAMBA_VERSION = "2.0.5-0"
DEFAULT_MICROMAMBA_URL = (
    "https://github.com/mamba-org/micromamba-releases/releases/download/"
    f"{MICROMAMBA_VERSION}/micromamba-linux-64"
)
DEFAULT_CHANNELS = ("conda-forge",)

# URLs and channels reach builder-stage RUN lines and pip's environment: no shell
# metacharacters at all (no `;`, `#`, `&`, `?`, quotes, spaces), so quoting is a second
# line of defence, not the only one.
_URL_RE = re.compile(r"https?://[A-Za-z0-9][A-Za-z0-9._~:/@%+-]{0,1000}")
_CHANNEL_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,100}}|{_URL_RE.pattern}")
_PY_SPEC_RE = re.compile(r"^python\s*(?:={1,2}|\s)\s*(\d+)\.(\d+)(?:\.[\d*]+|\.\*)?\s*$")


@dataclass(frozen=True)
class EnvOptions:
    pip_index_url: str | None = None  # a build argument of the builder stage only
    conda_channels: tuple[str, ...] = DEFAULT_CHANNELS
    micromamba_url: str = DEFAULT_MICROMAMBA_URL
    python_version: str | None = None  # the server's Python, for base images we cannot identify
    ca_bundle: bool = False  # a CA bundle is copied into the builder stages only

    def check(self) -> None:
        for ch in self.conda_channels:
            if not _CHANNEL_RE.fullmatch(ch):
                raise InputError(f"--conda-channel {bounded(ch)} is not a channel name or URL",
                                 fix="use a name such as conda-forge or an http(s) URL without "
                                 "spaces, quotes, ';', '#', '&' or '?'")
        if not _URL_RE.fullmatch(self.micromamba_url):
            raise InputError(f"--micromamba-url {bounded(self.micromamba_url)} is not a plain "
                             "http(s) URL",
                             fix="give the URL of a micromamba-linux-64 binary on your mirror")
        if self.pip_index_url is not None and not _URL_RE.fullmatch(self.pip_index_url):
            raise InputError(f"--pip-index-url {bounded(self.pip_index_url)} is not a plain "
                             "http(s) URL",
                             fix="give the index URL, e.g. https://pypi.example.com/simple")
        if self.python_version is not None and not re.fullmatch(r"3\.[0-9]{1,2}",
                                                                 self.python_version):
            raise InputError(f"--python-version {bounded(self.python_version)} is not of the "
                             "form 3.X",
                             fix="give the base image's Python as 3.X, e.g. 3.12")


def server_python(base: BaseImage, override: str | None = None) -> str | None:
    """The Python of the base image's backend stub (triton-facts.md 4.4)."""
    if override:
        return override
    if base.ref.startswith(LOCAL_CPU_REPOSITORY + ":"):
        return "3.11"
    if base.ngc_release:
        if base.ngc_release <= "23.04":
            return "3.8"
        if base.ngc_release <= "24.10":
            return "3.10"
        return "3.12"
    return None


def with_env_path(config_text: str, parameters: tuple[str, ...]) -> tuple[str, bool]:
    """config.pbtxt plus the one parameter that points the Python backend at the env, unless
    the config's own `parameters` (as parsed, not as text: a comment may name it) set it."""
    if EXECUTION_ENV_PATH in parameters:
        return config_text, False
    addition = (
        "\n# Added by triton-packager: the conda environment built from conda.yaml.\n"
        "parameters {\n"
        f'  key: "{EXECUTION_ENV_PATH}"\n'
        f'  value: {{ string_value: "$$TRITON_MODEL_DIRECTORY/{ENV_DIR}" }}\n'
        "}\n"
    )
    sep = "" if config_text.endswith("\n") or not config_text else "\n"
    return config_text + sep + addition, True


def _conda_package(dep: str) -> str:
    """`conda-forge::python=3.11` and `python=3.11` name the same package: drop the channel."""
    return re.sub(r"^[^\s:]+::", "", dep.strip())


def conda_for_server(text: str, python: str | None, *, file: str = "conda.yaml") -> str:
    """conda.yaml with the server's Python pinned; refuses a pin to another Python."""
    doc = safeyaml.load(text, file=file, fix="fix the YAML syntax")
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies", []), list):
        raise InputError("must be a mapping with a 'dependencies' list", file=file,
                         fix="write it as conda env export does: name, channels, dependencies")
    deps = list(doc.get("dependencies") or [])
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            check_requirements("\n".join(str(d) for d in dep["pip"]), file=f"{file} (pip:)")
        elif not isinstance(dep, str):
            raise InputError(f"field 'dependencies' has entry {bounded(dep)}; expected a "
                             "package spec or a 'pip:' list", file=file,
                             fix="write entries such as numpy=1.26 or pip: [requests]")
    pins = [d for d in deps
            if isinstance(d, str) and re.match(r"^python\b(?![-_])", _conda_package(d))]
    if python is None:
        raise InputError(
            "the base image's Python is unknown, so the environment cannot be matched to it",
            file=file,
            fix="pass --python-version 3.X (the Python of the image's triton_python_backend_stub)",
        )
    for pin in pins:
        m = _PY_SPEC_RE.match(_conda_package(pin))
        if m is None:
            raise InputError(
                f"field 'dependencies' pins {bounded(pin)}; the packager needs an exact "
                "python=X.Y",
                file=file, fix=f"write python={python}",
            )
        wanted = f"{m.group(1)}.{m.group(2)}"
        if wanted != python:
            raise InputError(
                f"field 'dependencies' pins python {wanted}, but the server's Python backend "
                f"runs Python {python}; an environment of another Python cannot be loaded",
                file=file,
                fix=f"pin python={python}, or choose a base image whose Python is {wanted} "
                "(NGC 23.05-24.10: 3.10, 24.11 and later: 3.12, the local CPU image: 3.11), "
                "or build a custom triton_python_backend_stub for it",
            )
    if not pins:
        deps.insert(0, f"python={python}")
    doc["dependencies"] = deps
    header = "# Generated by triton-packager from the model's conda.yaml (Python pinned).\n"
    return header + yaml.safe_dump(doc, sort_keys=False)


# requirements.txt is installed in a builder stage that sees only that one file: a line that
# names another file, a local path or its own index would fail there, or would carry a
# credential into the build context and the stage's history.
_LINE_OPTIONS_OK = frozenset({"--pre", "--prefer-binary", "--require-hashes", "--only-binary",
                              "--no-binary"})
_REACHES_OUT = {
    "-r": "includes another requirements file", "--requirement": "includes another file",
    "-c": "includes a constraints file", "--constraint": "includes a constraints file",
    "-e": "installs an editable path or URL", "--editable": "installs an editable path or URL",
    "-i": "sets its own package index", "--index-url": "sets its own package index",
    "--extra-index-url": "sets its own package index", "-f": "adds a find-links location",
    "--find-links": "adds a find-links location", "--trusted-host": "turns off TLS checks",
    "--no-index": "turns off the package index",
}


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def check_requirements(text: str, *, file: str = "requirements.txt") -> None:
    """Refuse requirement lines that reach outside the input or carry credentials."""
    fix_index = ("remove it; give a mirror with --pip-index-url (credentials there stay in the "
                 "builder stage)")
    for number, line in _logical_lines(text):
        where = f"{file}:{number}"
        shown = bounded(re.sub(r"://[^/@\s]*@", "://***@", line))  # never echo a credential
        head = line.split()[0]
        option = head.split("=", 1)[0]
        if "\x00" in line or len(line) > 4096:
            raise InputError(f"line {number} is not a requirement", file=where,
                             fix="one requirement specifier per line")
        if "${" in line:
            raise InputError(f"line {shown} expands an environment variable", file=where,
                             fix="write the value itself; the builder's environment is not yours")
        for m in re.finditer(r"[a-z][a-z0-9+.-]*://([^/\s]*)", line, re.I):
            if "@" in m.group(1):
                raise InputError(
                    f"line {number} carries credentials in a URL ({bounded(m.group(0).split('@')[-1])})",
                    file=where, fix=fix_index)
        if option.startswith("-"):
            if option in _REACHES_OUT:
                raise InputError(
                    f"line {shown} {_REACHES_OUT[option]}, which the image build cannot "
                    "see or must not carry",
                    file=where,
                    fix=fix_index if "index" in option or option == "-i" else
                    "list the packages themselves, by name and version")
            if option not in _LINE_OPTIONS_OK:
                raise InputError(f"line {shown} uses pip option {bounded(option)}, which "
                                 "the packager does not pass on", file=where,
                                 fix="remove the option; list packages by name and version")
            continue
        lowered = line.lower()
        if "file:" in lowered:
            raise InputError(f"line {shown} names a local file", file=where,
                             fix="publish the package to an index, or vendor its code beside "
                             "model.py")
        spec = line.split(";", 1)[0].split(" --", 1)[0].strip()
        if "://" not in spec and (spec.startswith((".", "/", "~")) or "/" in spec.split("@")[0]
                                  or spec.endswith((".whl", ".tar.gz", ".zip"))):
            raise InputError(f"line {shown} names a local path, which the builder stage "
                             "cannot see", file=where,
                             fix="publish the package to an index, or vendor its code beside "
                             "model.py")
        for extra in re.findall(r"\s(--[a-z-]+)", line):
            if extra != "--hash":
                raise InputError(f"line {shown} uses per-requirement option "
                                 f"{bounded(extra)}, which the packager does not pass on",
                                 file=where, fix="remove the option")
