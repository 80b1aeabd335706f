"""The setup phase: unpacking training artifacts safely, all or nothing."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fileserver import serve_directory

from packager.cli import main
from packager.inputs import OWNED_MARKER

FILES = {"model.onnx": b"\x08\x07graph", "config.pbtxt": b'platform: "onnxruntime_onnx"\n',
         "sub/labels.txt": b"a\nb\n"}


def _zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return path


def _tar(path: Path, entries: dict[str, bytes], *, symlink: str | None = None,
         hardlink: str | None = None, fifo: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, kind in ((symlink, tarfile.SYMTYPE), (hardlink, tarfile.LNKTYPE),
                           (fifo, tarfile.FIFOTYPE)):
            if name:
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = "/etc/passwd"
                tf.addfile(info)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    """The unpacked files, without the mark that says the packager made the directory."""
    assert (root / OWNED_MARKER).is_file()
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != OWNED_MARKER}


def test_zip_and_tar_unpack_identically(tmp_path: Path) -> None:
    assert main(["setup", str(_zip(tmp_path / "a.zip", FILES)), "-o", str(tmp_path / "z")]) == 0
    assert main(["setup", str(_tar(tmp_path / "a.tar.gz", FILES)), "-o", str(tmp_path / "t")]) == 0
    assert _tree(tmp_path / "z") == _tree(tmp_path / "t") == FILES


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: _zip(p / "slip.zip", {"../evil.txt": b"x"}), "outside the output directory"),
        (lambda p: _zip(p / "abs.zip", {"/etc/evil": b"x"}), "outside the output directory"),
        (lambda p: _tar(p / "slip.tgz", {"a/../../evil": b"x"}), "outside the output directory"),
        (lambda p: _tar(p / "abs.tgz", {"/tmp/evil": b"x"}), "outside the output directory"),
        (lambda p: _zip(p / "link.zip", FILES, {"pw": "/etc/passwd"}), "link or special file"),
        (lambda p: _tar(p / "sym.tgz", FILES, symlink="pw"), "link or special file"),
        (lambda p: _tar(p / "hard.tgz", FILES, hardlink="pw"), "link or special file"),
        (lambda p: _tar(p / "fifo.tgz", FILES, fifo="pipe"), "link or special file"),
        (lambda p: _zip(p / "big.zip", {"big.bin": b"\0" * 5000}), "more than 4096 bytes"),
        (lambda p: _tar(p / "big.tgz", {"big.bin": b"\0" * 5000}), "past the limit of 4096"),
        (lambda p: (p / "x.txt").write_text("not an archive") and p / "x.txt",
         "neither a zip nor a tar"),
    ],
)
def test_unsafe_archives_are_refused_leaving_nothing(make, expected: str, tmp_path: Path,
                                                     capsys) -> None:
    archive = make(tmp_path)
    out = tmp_path / "out"
    assert main(["setup", str(archive), "-o", str(out), "--max-size", "4096"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "fix:" in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[str]:
    with serve_directory(tmp_path) as url:
        yield url


def test_download_over_http(tmp_path: Path, http_dir: str) -> None:
    _tar(tmp_path / "artifact.tar.gz", FILES)
    assert main(["setup", f"{http_dir}/artifact.tar.gz", "-o", str(tmp_path / "out")]) == 0
    assert _tree(tmp_path / "out") == FILES


def test_unreachable_url_fails_cleanly(tmp_path: Path, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    out = tmp_path / "out"
    # exit 3: the network failed, not the input (the URL may well be right)
    assert main(["setup", f"http://127.0.0.1:{port}/a.zip", "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "cannot be downloaded" in err and "fix:" in err
    assert not out.exists()
    assert os.listdir(tmp_path) == []
