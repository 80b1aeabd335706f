"""`package` (and its phases detect, repository, dockerfile) as a request value that checks
itself: the CLI maps its arguments to a `PackageRequest`, a Python caller builds one directly, and
both get the same refusals (exit code 2, `InputError`) before anything is written."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packager import layers
from packager.analysis import Options
from packager.basechoice import split_base_source
from packager.configgen import ConfigOptions
from packager.errors import InputError, bounded
from packager.executor.images import registry
from packager.executor.phases import BuildEnv, Outcome, Workspace
from packager.executor.report import Reporter
from packager.imageref import DEFAULT_NAME_TEMPLATE
from packager.limits import CA_BUNDLE_MAX, DEFAULT_OUTPUT, PULL_CHOICES
from packager.phasetable import PACKAGE
from packager.pyenv import EnvOptions
from packager.runtime import SERVE_WITH

# Proxies become build arguments (environment variables of the builder stages): a plain URL, or
# for NO_PROXY a comma-separated list of hosts, domains and CIDRs.
_PROXY_RE = re.compile(r"(?:https?|socks5h?)://[A-Za-z0-9._~:/@%+-]{1,500}")
_NO_PROXY_RE = re.compile(r"[A-Za-z0-9.*:/\[\]_-]{1,253}(?:,[A-Za-z0-9.*:/\[\]_-]{1,253}){0,200}")
_PLATFORM_RE = re.compile(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?")


def check_proxy(key: str, value: str) -> str:
    pattern = _NO_PROXY_RE if key == "no_proxy" else _PROXY_RE
    if not pattern.fullmatch(value):
        option = "--" + key.replace("_", "-")
        raise InputError(f"{option} {bounded(value)} is not a "
                         + ("list of hosts" if key == "no_proxy" else "proxy URL"),
                         fix="give e.g. http://proxy.example.com:3128" if key != "no_proxy"
                         else "give e.g. localhost,127.0.0.1,.example.com")
    return value


def max_layer_size(value: str | None) -> int:
    """--max-layer-size in bytes (refused before anything is written when it is no size or too
    small to be a useful layer)."""
    if value is None:
        return layers.DEFAULT_MAX_LAYER_SIZE
    try:
        size = layers.parse_size(value)
        layers.check_max_layer_size(size)
    except ValueError as exc:
        raise InputError(f"--max-layer-size: {exc}",
                         fix="give a size such as 1GiB or 512MiB (at least "
                         f"{layers.MIN_MAX_LAYER_SIZE >> 20}MiB)") from None
    return size


@dataclass(frozen=True)
class PackageRequest:
    """What `triton-packager package` (or detect, repository, dockerfile) is asked to do; the
    fields are the command's options, with the CLI's defaults."""

    input: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
    output: str | os.PathLike[str] = DEFAULT_OUTPUT
    phase: str = PACKAGE.name  # the last phase to run (packager.phasetable.PHASES)
    labels: Sequence[str] = ()  # KEY=VALUE
    template_dir: str | os.PathLike[str] | None = None
    base_image: str | None = None
    healthcheck: str = "auto"
    image_name: str = DEFAULT_NAME_TEMPLATE
    tag: str | None = None
    env: EnvOptions = field(default_factory=EnvOptions)
    model_config: ConfigOptions = field(default_factory=ConfigOptions)
    allow_secret_files: bool = False
    serve_with: str = "native"
    ca_bundle: str | os.PathLike[str] | None = None
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None
    no_cache: bool = False
    platform: str | None = None
    pull: str = "missing"  # or "always"
    max_layer_size: str | None = None  # e.g. "1GiB"
    builder: str = registry.AUTO
    force: bool = False

    def check(self) -> tuple[Options, BuildEnv]:
        """Every check the request can make before anything is written; returns the options and
        build environment the phases run with."""
        # The CLI's argparse choices, for a caller that builds the request itself.
        for option, value, choices in (("--serve-with", self.serve_with, SERVE_WITH),
                                       ("--pull", self.pull, PULL_CHOICES)):
            if value not in choices:
                raise InputError(f"{option} has value {bounded(value)}",
                                 fix=f"use one of {', '.join(choices)}")
        ca_bundle = self.ca_bundle
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            raise InputError("does not exist or is not a file", file=str(ca_bundle),
                             fix="give a PEM file of CA certificates, e.g. "
                             "/etc/ssl/certs/ca-certificates.crt")
        if ca_bundle is not None and Path(ca_bundle).stat().st_size > CA_BUNDLE_MAX:
            raise InputError(f"is {Path(ca_bundle).stat().st_size} bytes; a CA bundle is at most "
                             f"{CA_BUNDLE_MAX}", file=str(ca_bundle),
                             fix="give the PEM file of the CA certificates the builder needs")
        self.env.check()
        proxies = tuple(
            (key.upper(), check_proxy(key, value))
            for key, value in (("http_proxy", self.http_proxy), ("https_proxy", self.https_proxy),
                               ("no_proxy", self.no_proxy))
            if value
        )
        labels = []
        for pair in self.labels:
            key, sep, value = pair.partition("=")
            if not sep:
                raise InputError(f"--label {bounded(pair)} is not KEY=VALUE",
                                 fix="pass --label key=value")
            labels.append((key, value))
        template_dir = self.template_dir
        if template_dir is not None and not Path(template_dir).is_dir():
            raise InputError("is not a directory", file=str(template_dir),
                             fix="give a directory holding Dockerfile.j2 or backends/<backend>.j2")
        platform = self.platform
        if platform is not None and not _PLATFORM_RE.fullmatch(platform):
            raise InputError(f"--platform {bounded(platform)} is not os/arch[/variant]",
                             fix="use e.g. linux/amd64 or linux/arm64")
        base_image, base_source = (None, None)
        if self.base_image:
            base_image, base_source = split_base_source(self.base_image)
        options = Options(
            labels=tuple(labels),
            template_dirs=(str(Path(template_dir).resolve()),) if template_dir else (),
            base_image=base_image,
            healthcheck=self.healthcheck,
            image_template=self.image_name,
            tag=self.tag,
            env=self.env,
            model_config=self.model_config,
            allow_secret_files=self.allow_secret_files,
            serve_with=self.serve_with,
        )
        build_env = BuildEnv(Path(ca_bundle) if ca_bundle else None, proxies,
                             no_cache=self.no_cache, platform=platform,
                             base_source=base_source, pull_base=self.pull == "always",
                             max_layer_size=max_layer_size(self.max_layer_size))
        return options, build_env

    def workspace(self, report: Reporter | None = None) -> Workspace:
        """The checked request as a Workspace (which checks the inputs and the output folder)."""
        options, build_env = self.check()
        return Workspace(self.input, self.output, options,
                         report if report is not None else Reporter.create(quiet=True),
                         force=self.force, build_env=build_env, builder=self.builder)


def package(request: PackageRequest, report: Reporter | None = None) -> Outcome:
    """Run the request's phases (up to `request.phase`); quiet unless given a Reporter."""
    return request.workspace(report).run(request.phase)
