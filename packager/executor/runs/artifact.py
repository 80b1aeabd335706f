"""Training artifacts: packing a directory as .tar.gz/.zip, and unpacking one safely.

`setup` treats the artifact as hostile. Before its first write it checks the arguments (the
output is replaceable, the artifact is not inside it, the URL is http(s)), downloads into a
temporary directory, and reads the whole archive once without writing: every entry name, every
entry type, every byte (so a bad CRC, a truncated stream or a zip bomb is found here) and the
layout (a file and a directory with the same name, a file given twice). Only then does it take
the output's lock and unpack again into a staging directory beside the output, which is
renamed into place on success and removed on any failure or signal.

Reading twice costs a second decompression; in exchange a bad archive never leaves anything
behind, not even a lock file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import http.client
import lzma
import os
import re
import socket
import ssl
import stat
import tarfile
import tempfile
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path, PurePosixPath
from typing import IO, NoReturn

from packager.errors import EnvironmentFault, InputError, bounded
from packager.executor.fs import staged_dir
from packager.executor.report import Reporter
from packager.executor.state import lock
from packager.executor.state.ownership import check_replaceable
from packager.inputs import OWNED_MARKER
from packager.limits import (
    CA_BUNDLE_MAX,
    DEFAULT_SETUP_MAX_BYTES,
    DEFAULT_SETUP_MAX_RATIO,
    DEFAULT_SETUP_TIMEOUT,
    MAX_TIMEOUT,
)

# More than DEFAULT_SETUP_MAX_RATIO times the archive's size is refused only past RATIO_FLOOR,
# so a small archive of text or zero-filled test data is never refused for its ratio.
RATIO_FLOOR = 256 << 20
_CHUNK = 1 << 20
_NET_CHUNK = 64 << 10
# A server that sends nothing for this long is treated as gone, even when the deadline is far.
_MAX_STALL = 30.0
_MAX_DEPTH, _MAX_NAME_BYTES, _MAX_PART_BYTES = 64, 4096, 255
_SCHEMES = ("http", "https")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_REBUILD = "download or copy the artifact again, or rebuild it"
_REGULAR_ONLY = "archive regular files and directories only"


def pack(src: Path, dest: Path) -> Path:
    """Archive the contents of `src` (not `src` itself) as dest (.zip, .tar or .tar.gz)."""
    name = dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=dest.parent)
    os.close(fd)
    try:
        files = sorted(p for p in src.rglob("*"))
        if name.endswith(".zip"):
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in files:
                    zf.write(p, p.relative_to(src).as_posix())
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            mode = "w" if name.endswith(".tar") else "w:gz"
            with tarfile.open(tmp, mode) as tf:  # type: ignore[call-overload]
                for p in files:
                    tf.add(p, p.relative_to(src).as_posix(), recursive=False)
        else:
            raise InputError(f"archive name {bounded(name)} has an unknown suffix",
                             fix="use .zip, .tar or .tar.gz")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


# --- limits: bytes and time -------------------------------------------------------------------

class _Budget:
    """Bytes actually produced, not the sizes the archive claims (those can lie)."""

    def __init__(self, limit: int, label: str, packed: int = 0, ratio: int = 0) -> None:
        self.left, self.limit, self.label = limit, limit, label
        self.packed, self.ratio, self.produced = packed, ratio, 0
        # 0: no ratio check (downloads count raw bytes, not expansion)
        self.ratio_limit = max(RATIO_FLOOR, packed * ratio) if ratio else 0

    def take(self, n: int, what: str = "expands past") -> None:
        self.left -= n
        self.produced += n
        if self.left < 0:
            raise InputError(f"{what} the limit of {self.limit} bytes", file=self.label,
                             fix="raise --max-size if the artifact really is that large")
        if self.ratio_limit and self.produced > self.ratio_limit:
            raise InputError(
                f"expands to more than {self.ratio} times its own size ({self.packed} bytes "
                f"unpack to over {self.ratio_limit}): a decompression bomb, or data that is "
                "mostly zeros", file=self.label,
                fix="raise --max-ratio if the artifact really compresses that well")


class _Deadline:
    """One deadline for the whole run (download, check, unpack): --timeout."""

    def __init__(self, seconds: float, label: str) -> None:
        self.seconds, self.label = seconds, label
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def fault(self, doing: str) -> EnvironmentFault:
        return EnvironmentFault(
            f"{doing} did not finish within --timeout {self.seconds:g} seconds", file=self.label,
            fix="raise --timeout, or check the network and the load of this machine")

    def check(self, doing: str) -> None:
        if self.left() <= 0:
            raise self.fault(doing)


# --- entry names and layout -------------------------------------------------------------------

def _refuse(name: str, problem: str, label: str, fix: str) -> NoReturn:
    raise InputError(f"entry {bounded(name)} {problem}", file=label, fix=fix)


def _check_name(name: str, label: str, *, is_dir: bool) -> PurePosixPath | None:
    """The entry's path below the output, or None for the output itself (a `./` directory).

    Names are normalised the way tar writers produce them (`./a`, `a//b`, `a/`), and anything
    that could leave the output, hide from a reader or fail later on write is refused here.
    """
    relative = "rebuild the archive with relative paths only"
    if not name:
        _refuse(name, "has an empty name", label, "rebuild the archive; every entry needs a name")
    try:
        raw = name.encode("utf-8")  # tar and zip names that were not UTF-8 arrive as surrogates
    except UnicodeEncodeError:
        _refuse(name, "has a name that is not valid UTF-8", label, "rename it to UTF-8 and rebuild")
    if any(unicodedata.category(c) == "Cc" for c in name):
        _refuse(name, "has control characters in its name", label, "rename it and rebuild")
    if len(raw) > _MAX_NAME_BYTES:
        _refuse(name, f"has a name longer than {_MAX_NAME_BYTES} bytes", label, "use shorter names")
    if "\\" in name:
        _refuse(name, "has a backslash in its name, and would be written outside the output "
                "directory on Windows", label, relative + ", separated by /")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        _refuse(name, "is absolute (or starts with a drive letter): it would be written outside "
                "the output directory", label, relative)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        _refuse(name, "would be written outside the output directory", label, relative)
    if len(parts) > _MAX_DEPTH:
        _refuse(name, f"is nested deeper than {_MAX_DEPTH} directories", label, "flatten the tree")
    if any(len(p.encode("utf-8")) > _MAX_PART_BYTES for p in parts):
        _refuse(name, f"has a path component longer than {_MAX_PART_BYTES} bytes", label,
                "use shorter names")
    if not parts:
        if is_dir:
            return None
        _refuse(name, "is a file named like the output directory itself", label,
                "rebuild the archive from the directory's contents")
    if not is_dir and name.endswith("/"):
        _refuse(name, "is a file whose name ends with /", label, "rebuild the archive")
    return PurePosixPath(*parts)


_MARKER = PurePosixPath(OWNED_MARKER)


class _Layout:
    """What the archive has placed so far, to refuse a file and a directory with the same name
    (in either order) and a file given twice: unpacking those would silently keep one of them.
    """

    def __init__(self, label: str) -> None:
        self.is_dir: dict[PurePosixPath, bool] = {}
        self.label = label
        self.files = 0

    def add(self, name: str, rel: PurePosixPath, *, is_dir: bool) -> None:
        fix = "rebuild the archive so every path is given once"
        for parent in reversed(rel.parents[:-1]):  # outermost first, without "."
            if not self.is_dir.setdefault(parent, True):
                _refuse(name, f"needs {bounded(str(parent))} to be a directory, but the archive "
                        "has a file of that name", self.label, fix)
        before = self.is_dir.get(rel)
        if before is None:
            self.is_dir[rel] = is_dir
            self.files += 0 if is_dir else 1
        elif not (before and is_dir):  # the same directory twice is harmless
            clash = "is given twice" if before == is_dir else \
                "is both a file and a directory in the archive"
            _refuse(name, clash, self.label, fix)

    def directories(self) -> list[PurePosixPath]:
        return [rel for rel, is_dir in self.is_dir.items() if is_dir]


# --- reading archives -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    name: str
    is_dir: bool
    executable: bool
    open: Callable[[], IO[bytes]]


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The name as the archive spells it (NUL included: zipfile cuts the name there)."""
    if info.flag_bits & 0x800:
        return info.orig_filename
    # No UTF-8 flag: zipfile decoded the bytes as cp437. Info-ZIP on Unix writes UTF-8 without
    # the flag, so take the bytes as UTF-8; bytes that are not UTF-8 become surrogates, refused.
    return info.orig_filename.encode("cp437").decode("utf-8", "surrogateescape")


def _zip_entries(path: Path, label: str, limit: int) -> Generator[_Entry, None, None]:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > limit:
            raise InputError(f"declares more than {limit} bytes of content", file=label,
                             fix="raise --max-size if the artifact really is that large")
        for info in infos:
            name, mode = _zip_name(info), info.external_attr >> 16
            # Zip writers that set no file type leave S_IFMT empty: that is a regular file.
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                _refuse(name, "is a link or special file", label, _REGULAR_ONLY)
            if info.flag_bits & 0x1:
                _refuse(name, "is encrypted", label, "rebuild the archive without a password")
            if info.compress_type not in _ZIP_METHODS:
                _refuse(name, f"uses compression method {info.compress_type}, which Python cannot "
                        "read", label, "rebuild the archive with deflate (the default)")
            # Not info.is_dir(): it indexes filename[-1] and fails on an empty name.
            is_dir = info.filename.endswith("/") or stat.S_ISDIR(mode)
            yield _Entry(name, is_dir, bool(mode & 0o111),
                         functools.partial(zf.open, info))


def _member(tf: tarfile.TarFile, m: tarfile.TarInfo) -> IO[bytes]:
    src = tf.extractfile(m)
    assert src is not None  # only regular files reach here
    return src


def _tar_entries(path: Path, label: str, budget: _Budget, deadline: _Deadline,
                 ) -> Generator[_Entry, None, None]:
    # Explicit encoding: names must not depend on the locale; non-UTF-8 bytes become surrogates.
    with tarfile.open(path, encoding="utf-8", errors="surrogateescape") as tf:
        for m in tf:
            if not (m.isfile() or m.isdir()):
                _refuse(m.name, "is a link or special file", label, _REGULAR_ONLY)
            yield _Entry(m.name, m.isdir(), bool(m.mode & 0o111), functools.partial(_member, tf, m))
        _check_tar_end(tf, label, budget, deadline)


def _check_tar_end(tf: tarfile.TarFile, label: str, budget: _Budget, deadline: _Deadline) -> None:
    """tarfile ends the member list quietly at a truncated or garbled header; tar archives end
    with a zero block, so its absence means the archive was cut or damaged. Reading on to the
    end also makes gzip check its CRC."""
    tf.fileobj.seek(tf.offset)
    if tf.fileobj.read(tarfile.BLOCKSIZE) != tarfile.NUL * tarfile.BLOCKSIZE:
        raise InputError("is truncated or damaged: no end-of-archive block after the last entry",
                         file=label, fix=_REBUILD)
    while chunk := tf.fileobj.read(_CHUNK):
        budget.take(len(chunk))
        deadline.check("unpacking")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return bounded(text, 200, quote=not text.isprintable())  # it may quote an entry's name


def _damaged(label: str, exc: BaseException) -> InputError:
    if isinstance(exc, NotImplementedError):  # zipfile: a newer zip version, strong encryption
        return InputError(f"uses a zip feature Python cannot read: {_reason(exc)}", file=label,
                          fix="rebuild the archive with a common zip tool (deflate, no password)")
    return InputError(f"is damaged or truncated: {_reason(exc)}", file=label, fix=_REBUILD)


def _is_format_error(exc: OSError) -> bool:
    """The decompressors' own OSErrors (BadGzipFile, bz2's "Invalid data stream") carry no
    errno, and a garbled zip offset makes a seek fail with EINVAL; any other errno while reading
    the archive is the machine's (an I/O error, a permission)."""
    return exc.errno is None or exc.errno == errno.EINVAL


class _OutputFault(Exception):
    """An OSError while writing the output. Tagged so that it is never taken for a damaged
    archive: it is the machine's fault whatever its errno (a vfat or SMB mount answers EINVAL
    to names it cannot store)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


@contextlib.contextmanager
def _output_side() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _OutputFault(exc) from exc


@contextlib.contextmanager
def _archive_errors(label: str) -> Iterator[None]:
    """Map whatever a damaged archive makes the readers raise to one InputError.

    zipfile, tarfile, gzip, bz2, lzma and zlib each have their own exceptions for a bad CRC,
    a truncated stream or a garbled header; catching them at the root covers the cases nobody
    listed. Errors of the output side pass through as the OSError they are (exit 3).
    """
    try:
        yield
    except _OutputFault as fault:
        raise fault.exc  # noqa: B904 - the chain keeps the original traceback for --debug
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
            UnicodeDecodeError, NotImplementedError) as exc:
        raise _damaged(label, exc) from None
    except OSError as exc:
        if not _is_format_error(exc):
            raise
        raise _damaged(label, exc) from None


def _format(path: Path, label: str) -> str:
    """'zip' or 'tar', or an InputError that says what the file looks like instead."""
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04"):
        raise InputError("looks like a zip archive, but its central directory is missing "
                         "(truncated or damaged)", file=label, fix=_REBUILD)
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise InputError(f"is {kind}-compressed but holds no readable tar archive "
                             "(truncated or damaged)", file=label, fix=_REBUILD)
    raise InputError("is neither a zip nor a tar archive", file=label,
                     fix="give a .zip, .tar or .tar.gz file")


def _read(src: IO[bytes], label: str) -> bytes:
    """One chunk of an entry. Read errors are classified here, because the writing pass reads
    inside _output_side, which would otherwise take them for the output's."""
    try:
        return src.read(_CHUNK)
    except OSError as exc:
        if not _is_format_error(exc):
            raise
        raise _damaged(label, exc) from None


def _drain(src: IO[bytes], out: IO[bytes] | None, budget: _Budget, deadline: _Deadline) -> None:
    while chunk := _read(src, budget.label):
        budget.take(len(chunk))
        deadline.check("unpacking")
        if out is not None:
            out.write(chunk)


def _walk(path: Path, fmt: str, label: str, limit: int, deadline: _Deadline,
          stage: Path | None, max_ratio: int = DEFAULT_SETUP_MAX_RATIO) -> _Layout:
    """Read every entry; with `stage`, also write it there. The same code checks and writes, so
    the check pass cannot accept what the write pass would refuse."""
    budget = _Budget(limit, label, path.stat().st_size, max_ratio)
    layout = _Layout(label)
    entries = (_zip_entries(path, label, limit) if fmt == "zip"
               else _tar_entries(path, label, budget, deadline))
    with _archive_errors(label), contextlib.closing(entries):
        for e in entries:
            deadline.check("unpacking")
            rel = _check_name(e.name, label, is_dir=e.is_dir)
            if rel is None or (rel == _MARKER and not e.is_dir):
                continue  # "./", or the marker of a packager-made directory (replaced by ours)
            if rel.parts[0] == OWNED_MARKER:
                _refuse(e.name, f"uses the name {OWNED_MARKER}, which marks directories "
                        "triton-packager made", label, "rename it and rebuild the archive")
            layout.add(e.name, rel, is_dir=e.is_dir)
            if stage is not None:
                _write(stage / rel, e, budget, deadline)
            elif not e.is_dir:
                with e.open() as src:
                    _drain(src, None, budget, deadline)
    return layout


def _write(target: Path, e: _Entry, budget: _Budget, deadline: _Deadline) -> None:
    if e.is_dir:
        with _output_side():
            target.mkdir(parents=True, exist_ok=True)
        return
    with e.open() as src, _output_side():
        target.parent.mkdir(parents=True, exist_ok=True)
        # "xb": the layout check makes a clash impossible; never write through an existing name.
        with target.open("xb") as out:
            _drain(src, out, budget, deadline)
        os.chmod(target, 0o755 if e.executable else 0o644)


# --- downloading ------------------------------------------------------------------------------

def _label(artifact: str) -> str:
    """The artifact as messages show it: bounded, control characters escaped, no password."""
    with contextlib.suppress(ValueError):  # a malformed URL is refused later, shown as given
        parts = urllib.parse.urlsplit(artifact)
        if _URL_RE.match(artifact) and parts.password is not None:
            artifact = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    return bounded(artifact, 300, quote=not artifact.isprintable())


def _check_url(url: str, label: str) -> None:
    fix = "give a local .zip/.tar[.gz] file or an http(s):// URL"
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        raise InputError(f"URL {bounded(url)} contains spaces or control characters",
                         file=label, fix="percent-encode them (%20 for a space)")
    scheme = url.partition(":")[0].lower()
    if scheme not in _SCHEMES:
        raise InputError(f"is not a local file, and {bounded(scheme + ':')} URLs are not "
                         "supported", file=label, fix=fix)
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise InputError(f"is not a valid URL: {_reason(exc)}", file=label,
                         fix="check the URL") from None
    if not parts.hostname:
        raise InputError("has no host name", file=label, fix="check the URL")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp:// too; an artifact comes over http(s) or not at all."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Message, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in _SCHEMES:
            raise InputError(f"redirects to {bounded(newurl)}, which is not http(s)",
                             file=_label(req.full_url), fix="give the final http(s) URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


def _set_read_timeout(resp: object, seconds: float) -> None:
    """http.client has no public way to change a response's socket timeout; reach the socket
    through the file the response reads from. If that path ever changes, the connect-time
    timeout still bounds each read and the deadline is checked between reads."""
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(max(seconds, 0.001))


def _network_fault(exc: BaseException, label: str, deadline: _Deadline) -> NoReturn:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError):
        if deadline.left() <= 0:
            raise deadline.fault("downloading") from None
        raise EnvironmentFault(f"cannot be downloaded: the server sent nothing for "
                               f"{_MAX_STALL:g} seconds", file=label,
                               fix="check that the server is up, then retry") from None
    if isinstance(reason, ssl.SSLCertVerificationError):
        raise EnvironmentFault(f"cannot be downloaded: {_reason(reason)}", file=label,
                               fix="give the server's CA with --ca-bundle (in Tekton: bind the "
                               "`ca` workspace)") from None
    raise EnvironmentFault(f"cannot be downloaded: {_reason(reason)}", file=label,
                           fix="check the URL, the network and that the server is reachable") from None


def ca_context(ca_bundle: Path | None) -> ssl.SSLContext | None:
    """The system's trusted roots plus the PEM certificates of `ca_bundle`: a file, or a
    directory of them as Kubernetes mounts a ConfigMap or Secret (each key a file; the `..data`
    entries are Kubernetes' own). None: the default context. Python's SSL_CERT_DIR would not do:
    OpenSSL reads a directory only by hashed names (`<hash>.0`), which a ConfigMap has not."""
    if ca_bundle is None:
        return None
    fix = ("give a PEM file of CA certificates, or a directory of them (the mounted `ca` "
           "workspace)")
    if ca_bundle.is_dir():
        files = [f for f in sorted(ca_bundle.iterdir())
                 if not f.name.startswith(".") and f.is_file()]
    elif ca_bundle.is_file():
        files = [ca_bundle]
    else:
        raise InputError("--ca-bundle does not exist", file=str(ca_bundle), fix=fix)
    if not files:
        raise InputError("--ca-bundle holds no certificate file", file=str(ca_bundle), fix=fix)
    context = ssl.create_default_context()
    for f in files:
        if f.stat().st_size > CA_BUNDLE_MAX:
            raise InputError(f"--ca-bundle: larger than {CA_BUNDLE_MAX} bytes", file=str(f), fix=fix)
        try:
            context.load_verify_locations(cafile=str(f))
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise InputError(f"--ca-bundle: no PEM certificate could be read "
                             f"({_reason(exc)})", file=str(f), fix=fix) from None
    return context


def _open_url(url: str, label: str, deadline: _Deadline,
              context: ssl.SSLContext | None = None) -> http.client.HTTPResponse:
    handlers: list[urllib.request.BaseHandler] = [_HttpOnlyRedirects()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        resp = opener.open(url, timeout=max(min(deadline.left(), _MAX_STALL), 0.001))
    except urllib.error.HTTPError as exc:
        exc.close()
        status = f"the server answered {exc.code} {bounded(exc.reason, quote=False)}"
        if exc.code < 500:  # the URL is wrong, or not allowed: the user must fix it
            raise InputError(f"cannot be downloaded: {status}", file=label,
                             fix="check the URL (and any credentials it needs)") from None
        raise EnvironmentFault(f"cannot be downloaded: {status}", file=label,
                               fix="the server failed; retry later") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        _network_fault(exc, label, deadline)
    assert isinstance(resp, http.client.HTTPResponse)  # only http(s) handlers get this far
    return resp


def _download(url: str, dest: Path, limit: int, deadline: _Deadline, label: str,
              context: ssl.SSLContext | None = None) -> None:
    """Download to dest within the deadline: a server that drips a byte at a time is stopped."""
    budget = _Budget(limit, label)
    with _open_url(url, label, deadline, context) as resp, dest.open("wb") as out:
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            budget.take(int(declared), "is larger than")
        got = 0
        while True:
            deadline.check("downloading")
            _set_read_timeout(resp, min(deadline.left(), _MAX_STALL))
            try:
                chunk = resp.read1(_NET_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                _network_fault(exc, label, deadline)
            if not chunk:
                break
            got += len(chunk)
            budget.take(len(chunk), "is larger than")
            out.write(chunk)
    if declared.isdigit() and got != int(declared):
        raise EnvironmentFault(f"cannot be downloaded: the connection closed after {got} of "
                               f"{declared} bytes", file=label, fix="retry")


# --- the setup command ------------------------------------------------------------------------

@dataclass(frozen=True)
class SetupRequest:
    """What `triton-packager setup` is asked to do; the fields are the command's options, with
    the CLI's defaults. `check` refuses what needs no file read; `setup` runs it."""

    artifact: str  # a .zip/.tar[.gz] path or an http(s) URL
    output: str | os.PathLike[str]
    max_size: int = DEFAULT_SETUP_MAX_BYTES  # bytes the unpacked files may take
    max_ratio: int = DEFAULT_SETUP_MAX_RATIO  # 0: no ratio check
    timeout: float = DEFAULT_SETUP_TIMEOUT  # seconds for the whole download and unpack
    force: bool = False  # replace a non-empty --output the packager did not create
    # A PEM file or a directory of them, trusted besides the system's roots. Empty: none (an
    # unbound optional Tekton workspace is an empty path).
    ca_bundle: str | os.PathLike[str] | None = None

    def check(self) -> None:
        if not self.artifact:
            raise InputError("ARTIFACT is empty",
                             fix="give a .zip or .tar[.gz] file or an http(s) URL")
        if os.fspath(self.output) == "":  # Path("") would be the working directory
            raise InputError("--output is empty", fix="give the directory to unpack into")
        if self.max_size < 0:
            raise InputError(f"--max-size {self.max_size} is negative", fix="give a size in bytes")
        if self.max_ratio < 0:
            raise InputError(f"--max-ratio {self.max_ratio} is negative",
                             fix="give a ratio such as 100, or 0 to turn the check off")
        if not 0 < self.timeout <= MAX_TIMEOUT:  # NaN too
            raise InputError(f"--timeout {self.timeout:g} is not between 0 and 30 days",
                             fix="give a number of seconds, e.g. 3600")

    @property
    def ca_path(self) -> Path | None:
        return Path(self.ca_bundle) if self.ca_bundle else None


def _check_args(artifact: str, out: Path, label: str, force: bool) -> bool:
    """Everything about the arguments that reads the disk, before anything is written. True for
    a URL."""
    if out == out.parent:
        raise InputError("--output is the filesystem root", file=str(out),
                         fix="choose a directory to unpack into")
    is_url = bool(_URL_RE.match(artifact)) and (
        artifact.lower().startswith(("http:", "https:")) or not os.path.lexists(artifact))
    if is_url:
        _check_url(artifact, label)
    else:
        local = Path(artifact)
        if not local.is_file():
            raise InputError("does not exist or is not a file", file=label,
                             fix="give a .zip or .tar[.gz] file or an http(s) URL")
        # realpath, not resolve(): it does not raise on a symlink loop (check_replaceable does)
        where, real_out = Path(os.path.realpath(local)), Path(os.path.realpath(out))
        if where == real_out or real_out in where.parents:
            raise InputError(f"is inside --output {out}, which setup replaces", file=label,
                             fix="move the artifact out of the output directory, or choose "
                             "another --output")
    check_replaceable(out, option="--output", force=force)
    return is_url


def unpack(artifact: str, output: Path, report: Reporter, max_bytes: int = DEFAULT_SETUP_MAX_BYTES,
           *, timeout: float = DEFAULT_SETUP_TIMEOUT, force: bool = False,
           max_ratio: int = DEFAULT_SETUP_MAX_RATIO, ca_bundle: Path | None = None) -> Path:
    """Unpack a local or http(s) archive into `output`, all or nothing, within `timeout`.
    `ca_bundle` (a PEM file or a directory of them) is trusted besides the system's roots."""
    return setup(SetupRequest(artifact, output, max_bytes, max_ratio, timeout, force, ca_bundle),
                 report)


def setup(request: SetupRequest, report: Reporter | None = None) -> Path:
    """Run a checked `setup` request; returns the output directory as given. Quiet unless given a
    Reporter."""
    request.check()
    report = report if report is not None else Reporter.create(quiet=True)
    artifact, output = request.artifact, Path(request.output)
    max_bytes, max_ratio = request.max_size, request.max_ratio
    label = _label(artifact)
    deadline = _Deadline(request.timeout, label)
    out = Path(os.path.abspath(output))
    is_url = _check_args(artifact, out, label, request.force)
    context = ca_context(request.ca_path)
    with contextlib.ExitStack() as stack:
        local = Path(artifact)
        if is_url:
            # TMPDIR decides where; the directory goes away on any exit, signals included.
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="triton-setup-"))
            local = Path(tmp) / "artifact"
            report.step(f"setup: downloading {label}")
            _download(artifact, local, max_bytes, deadline, label, context)
        with _archive_errors(label):
            fmt = _format(local, label)
        report.step(f"setup: checking {label}")
        if not _walk(local, fmt, label, max_bytes, deadline, stage=None,
                     max_ratio=max_ratio).files:
            raise InputError("holds no files", file=label,
                             fix="check that the archive was made from the model directory")
        lock_path = lock.lock_for(out)
        with lock.exclusive(lock_path, what=str(out), report=report,
                            wait=max(min(lock.DEFAULT_WAIT, deadline.left()), 0.0)), \
                staged_dir(out, kind="setup", force=request.force) as stage:
            layout = _walk(local, fmt, label, max_bytes, deadline, stage=stage,
                           max_ratio=max_ratio)
            for rel in [PurePosixPath("."), *layout.directories()]:
                os.chmod(stage / rel, 0o755)  # mkdtemp made the stage 0700; the umask the rest
    report.step(f"setup: unpacked into {output}")
    return output
