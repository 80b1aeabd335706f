"""`push`: the seed's result step. Push the image named in result.json, record its digest.

Everything is checked before the push: result.json, --registry, the credentials' sources and the
files the results go to. Only a push that reported a digest is recorded; a failed one leaves
result.json and the result files as they were."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packager.errors import InputError, bounded
from packager.executor.fs import write_atomic
from packager.executor.images import registry
from packager.executor.images.builder import Credentials, Tls
from packager.executor.images.layer_push import COMPRESSIONS, push_image
from packager.executor.report import Reporter
from packager.executor.state.lock import exclusive, lock_for
from packager.executor.verify import load_result
from packager.imageref import parse_reference, refuse_base_repository
from packager.limits import CA_BUNDLE_MAX, DEFAULT_OUTPUT, PUSHERS
from packager.result import ResultDocument

ENV_USERNAME = "TRITON_PACKAGER_REGISTRY_USERNAME"
ENV_PASSWORD = "TRITON_PACKAGER_REGISTRY_PASSWORD"
SECRET_FILE_MAX = 64 << 10


@dataclass(frozen=True)
class PushRequest:
    """What `triton-packager push` is asked to do; the fields are the command's options, with
    the CLI's defaults. Paths are taken as given (str or PathLike) and checked by `check`: an
    empty string is refused, where Path("") would silently mean the working directory."""

    out: str | os.PathLike[str] = DEFAULT_OUTPUT
    registry: str | None = None
    builder: str | None = None  # None: the builder result.json names
    authfile: str | os.PathLike[str] | None = None
    ca_bundle: str | os.PathLike[str] | None = None  # the registry's CA (PEM)
    tls_verify: bool = True
    image_url_file: str | os.PathLike[str] | None = None  # Tekton results: IMAGE_URL, IMAGE_DIGEST
    image_digest_file: str | os.PathLike[str] | None = None
    # "layers": layer by layer, weights uncompressed (images/layer_push.py); "builder": the
    # builder's own push (`docker push`, `buildah push`), every layer gzipped.
    pusher: str = "layers"
    layer_compression: str = "auto"  # "gzip": weights gzipped too (layers pusher)

    def check(self) -> None:
        """The checks that read nothing: no file option is empty (an empty Tekton param must not
        silently fall back to other credentials or CAs), and the choices are known ones."""
        for option, value in (("--authfile", self.authfile), ("--ca-bundle", self.ca_bundle),
                              ("--image-url-file", self.image_url_file),
                              ("--image-digest-file", self.image_digest_file)):
            if value is not None and os.fspath(value) == "":
                raise InputError(f"{option} is empty",
                                 fix=f"give a file path, or leave {option} out")
        if self.pusher not in PUSHERS or self.layer_compression not in COMPRESSIONS:
            raise InputError(f"--pusher {bounded(self.pusher)} / --layer-compression "
                             f"{bounded(self.layer_compression)} is not known",
                             fix=f"use --pusher {' or '.join(PUSHERS)}, --layer-compression "
                             f"{' or '.join(COMPRESSIONS)}")

    @property
    def tls(self) -> Tls:
        return Tls(_path(self.ca_bundle), self.tls_verify)


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def push(request: PushRequest, report: Reporter,
         environ: Mapping[str, str] | None = None) -> ResultDocument:
    request.check()
    # Bad input (result.json, --registry, credentials, result files) is refused before the
    # lock file is created and before anything reaches a registry.
    out = Path(request.out)
    result = load_result(out)
    ref = parse_reference(result.image, what="image in result.json")
    target = str(ref)
    if request.registry is not None:
        check_registry(request.registry)
        prefix = request.registry.rstrip("/") + "/"
        if not result.image.startswith(prefix):
            if result.pushed_image:
                # result.json's image is then the pushed reference (registry included): a
                # prefix would give host/b/host/a/name, a repository nobody asked for.
                raise InputError(
                    f"result.json's image {bounded(result.image)} was pushed already; --registry "
                    f"{bounded(request.registry)} would push it as "
                    f"{bounded(prefix + result.image)}",
                    file=str(out / "result.json"),
                    fix="push without --registry to push it there again, or package into "
                    "another --output and push that to the other registry")
            target = str(parse_reference(prefix + result.image, what="--registry"))
    if result.base_image:
        refuse_base_repository(target, result.base_image, what="the push target")
    # The builder that holds the image, checked to run here (exit 3) before anything else.
    builder = registry.select(request.builder or result.builder)
    credentials = resolve_credentials(_path(request.authfile),
                                      os.environ if environ is None else environ)
    check_tls(request.tls)
    if request.pusher == "builder":
        builder.check_push(request.tls)
    url_file, digest_file = _path(request.image_url_file), _path(request.image_digest_file)
    for path in (url_file, digest_file):
        if path is not None:
            _check_result_file(path)
    # result.json is rewritten below: hold the output's lock, as package does.
    with exclusive(lock_for(out), what=str(out), report=report):
        if request.pusher == "builder":
            digest = builder.push(result.image, target, report, credentials, request.tls,
                                  image_id=result.image_id)
        else:
            source = result.image_id or result.image
            digest = push_image(builder, source, out, target, report, credentials, request.tls,
                                compression=request.layer_compression)
            if target != result.image or builder.image_id(target) != result.image_id:
                builder.tag_image(source, target)  # it names the image locally too
        repository = parse_reference(target).repository
        updated = dataclasses.replace(result, image=target, pushed_digest=digest,
                                      pushed_image=f"{repository}@{digest}")
        write_atomic(out / "result.json", updated.to_json())
        # Tekton takes a result file's bytes as they are: no trailing newline.
        if url_file is not None:
            write_atomic(url_file, target)
        if digest_file is not None:
            write_atomic(digest_file, digest)
    report.step(f"push: {target}@{digest}")
    return updated


_REGISTRY_RE = re.compile(
    r"(?P<host>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:]{2,39}\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?:/[a-z0-9._/-]{1,200})?/?")


def check_registry(registry: str) -> None:
    """host[:port][/path], where Docker will read the host as a registry: a bare word without
    a dot or a port (`myreg`) would silently become docker.io/myreg."""
    fix = "give host[:port][/path], e.g. registry.example.com or 127.0.0.1:5000/team"
    if "://" in registry:
        raise InputError(f"--registry {bounded(registry)} has a scheme; a registry reference "
                         "names no protocol", fix=fix + " (no https://)")
    if registry != registry.lower() and registry.lower() == registry.lower().strip() \
            and _REGISTRY_RE.fullmatch(registry.lower()):
        raise InputError(f"--registry {bounded(registry)} has upper-case letters, which image "
                         "references do not allow", fix=f"use {bounded(registry.lower())}")
    m = _REGISTRY_RE.fullmatch(registry)
    if m is None:
        raise InputError(f"--registry {bounded(registry)} is not host[:port][/path]", fix=fix)
    host, port = m.group("host"), m.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise InputError(f"--registry {bounded(registry)} has port {port}, past 65535", fix=fix)
    if port is None and "." not in host and host != "localhost" and not host.startswith("["):
        raise InputError(f"--registry {bounded(registry)} has no dot and no port, so Docker "
                         "would read it as a Docker Hub namespace, not a registry", fix=fix)


def _read_secret(path: str, what: str) -> str:
    """A username or password from a file (a mounted Kubernetes Secret), one trailing newline
    dropped. The content is never shown."""
    try:
        data = Path(path).read_bytes()[:SECRET_FILE_MAX + 1]
    except OSError as exc:
        raise InputError(f"the {what} file cannot be read: {exc.strerror or type(exc).__name__}",
                         file=path, fix="give a readable file holding only the " + what) from None
    if len(data) > SECRET_FILE_MAX:
        raise InputError(f"the {what} file is larger than {SECRET_FILE_MAX} bytes", file=path,
                         fix="give a file holding only the " + what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"the {what} file is not UTF-8 text", file=path,
                         fix="give a file holding only the " + what) from None
    return text[:-1] if text.endswith("\n") else text


def _secret(environ: Mapping[str, str], name: str, what: str) -> tuple[str | None, str | None]:
    """(value, where it came from) from $NAME or the file $NAME_FILE; at most one of them."""
    value, file = environ.get(name), environ.get(name + "_FILE")
    if value is not None and file is not None:
        raise InputError(f"both ${name} and ${name}_FILE are set", fix="set only one of them")
    if file is not None:
        return _read_secret(file, what), f"${name}_FILE"
    return value, (f"${name}" if value is not None else None)


def resolve_credentials(authfile: Path | None, environ: Mapping[str, str]) -> Credentials:
    """Credentials for push, first found wins: --authfile; a username and password from
    $TRITON_PACKAGER_REGISTRY_USERNAME/_PASSWORD (or their *_FILE variants); $REGISTRY_AUTH_FILE;
    $DOCKER_CONFIG/config.json; else the builder's own defaults. Never from the command line."""
    if authfile is not None:
        check_authfile(authfile)
        return Credentials(authfile=authfile, source=f"--authfile {bounded(str(authfile), 200)}")
    username, user_from = _secret(environ, ENV_USERNAME, "registry username")
    password, pass_from = _secret(environ, ENV_PASSWORD, "registry password")
    if (username is None) != (password is None):
        missing = ENV_PASSWORD if password is None else ENV_USERNAME
        raise InputError(f"a registry {'username' if password is None else 'password'} is set "
                         f"({user_from or pass_from}) but not the "
                         f"{'password' if password is None else 'username'}",
                         fix=f"set ${missing} or ${missing}_FILE too")
    if username is not None and password is not None:
        if not username or ":" in username or any(ch in username for ch in "\r\n\0"):
            raise InputError(f"the registry username from {user_from} is empty or holds ':' or "
                             "a line break", fix="give the registry account's user name")
        if any(ch in password for ch in "\r\n\0"):
            raise InputError(f"the registry password from {pass_from} holds a line break",
                             fix="give the password alone, on one line")
        return Credentials(username=username, password=password,
                           source=f"{user_from} and {pass_from}")
    if environ.get("REGISTRY_AUTH_FILE"):
        path = Path(environ["REGISTRY_AUTH_FILE"])
        check_authfile(path)
        return Credentials(authfile=path, source="$REGISTRY_AUTH_FILE")
    if environ.get("DOCKER_CONFIG"):
        path = Path(environ["DOCKER_CONFIG"]) / "config.json"
        if path.exists():
            check_authfile(path)
            return Credentials(authfile=path, source="$DOCKER_CONFIG/config.json")
    return Credentials()


def check_authfile(authfile: Path) -> None:
    """A readable JSON object whose `auths` (if any) is an object; its content is never shown
    (it holds credentials), only the line of a syntax error."""
    fix = "give a Docker-style auth file: {\"auths\": {\"HOST\": {\"auth\": \"...\"}}}"
    try:
        data = authfile.read_bytes()[:SECRET_FILE_MAX + 1]
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise InputError(f"the auth file cannot be read: {why}", file=str(authfile),
                         fix="give a readable Docker-style auth file (config.json)") from None
    if len(data) > SECRET_FILE_MAX:
        raise InputError(f"the auth file is larger than {SECRET_FILE_MAX} bytes",
                         file=str(authfile), fix=fix)
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("the auth file is not UTF-8 text", file=str(authfile), fix=fix) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the auth file is not JSON (line {exc.lineno})", file=str(authfile),
                         fix=fix) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
        raise InputError("the auth file is not a JSON object with an `auths` object",
                         file=str(authfile), fix=fix)


def check_tls(tls: Tls) -> None:
    if tls.ca_bundle is None:
        return
    path = tls.ca_bundle
    if not path.is_file():
        raise InputError("does not exist or is not a file", file=str(path),
                         fix="give the PEM file of the registry's CA")
    size = path.stat().st_size
    if size > CA_BUNDLE_MAX or b"-----BEGIN CERTIFICATE-----" not in path.read_bytes()[:CA_BUNDLE_MAX]:
        raise InputError("is not a PEM file of CA certificates" + (
            f" ({size} bytes; at most {CA_BUNDLE_MAX})" if size > CA_BUNDLE_MAX else ""),
            file=str(path), fix="give the PEM file of the registry's CA (-----BEGIN CERTIFICATE-----)")


def _check_result_file(path: Path) -> None:
    """A Tekton result file: its directory must exist and be writable, and it is no directory."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InputError("cannot be written (a directory, or its directory is missing or "
                         "read-only)", file=str(path),
                         fix="give a file in an existing, writable directory")
