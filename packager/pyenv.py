"""Python-backend environments: requirements.txt and conda.yaml, matched to the server's Python.

The Python backend runs model.py in its stub's interpreter; packages built for another Python
are silently unusable (triton-facts.md 4.2-4.3). So a conda.yaml that pins another Python is
refused before any build, and one without a pin gets the server's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from packager.baseimage import LOCAL_CPU_REPOSITORY, BaseImage
from packager.errors import InputError

ENV_DIR = "python-env"  # beside config.pbtxt, referenced as $$TRITON_MODEL_DIRECTORY/python-env
EXECUTION_ENV_PATH = "EXECUTION_ENV_PATH"
MICROMAMBA_VERSION = "2.0.5-0"
DEFAULT_MICROMAMBA_URL = (
    "https://github.com/mamba-org/micromamba-releases/releases/download/"
    f"{MICROMAMBA_VERSION}/micromamba-linux-64"
)
DEFAULT_CHANNELS = ("conda-forge",)

_CHANNEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*|https?://[A-Za-z0-9._~:/?#@!&+,;=%-]+")
_URL_RE = re.compile(r"https?://[A-Za-z0-9._~:/?#@!&+,;=%-]+")
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
                raise InputError(f"--conda-channel {ch!r} is not a channel name or URL",
                                 fix="use a name such as conda-forge or an http(s) URL")
        if not _URL_RE.fullmatch(self.micromamba_url):
            raise InputError(f"--micromamba-url {self.micromamba_url!r} is not an http(s) URL",
                             fix="give the URL of a micromamba-linux-64 binary on your mirror")
        if self.pip_index_url is not None and not _URL_RE.fullmatch(self.pip_index_url):
            raise InputError(f"--pip-index-url {self.pip_index_url!r} is not an http(s) URL",
                             fix="give the index URL, e.g. https://pypi.example.com/simple")
        if self.python_version is not None and not re.fullmatch(r"3\.\d{1,2}",
                                                                 self.python_version):
            raise InputError(f"--python-version {self.python_version!r} is not of the form 3.X",
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


def with_env_path(config_text: str) -> tuple[str, bool]:
    """config.pbtxt plus the one parameter that points the Python backend at the env."""
    if EXECUTION_ENV_PATH in config_text:
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


def conda_for_server(text: str, python: str | None, *, file: str = "conda.yaml") -> str:
    """conda.yaml with the server's Python pinned; refuses a pin to another Python."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"is not valid YAML: {exc}".splitlines()[0], file=file,
                         fix="fix the YAML syntax") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies", []), list):
        raise InputError("must be a mapping with a 'dependencies' list", file=file,
                         fix="write it as conda env export does: name, channels, dependencies")
    deps = list(doc.get("dependencies") or [])
    pins = [d for d in deps if isinstance(d, str) and re.match(r"^python\b(?![-_])", d.strip())]
    if python is None:
        raise InputError(
            "the base image's Python is unknown, so the environment cannot be matched to it",
            file=file,
            fix="pass --python-version 3.X (the Python of the image's triton_python_backend_stub)",
        )
    for pin in pins:
        m = _PY_SPEC_RE.match(pin.strip())
        if m is None:
            raise InputError(
                f"field 'dependencies' pins {pin!r}; the packager needs an exact python=X.Y",
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
