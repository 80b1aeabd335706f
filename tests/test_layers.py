"""The weights image assembled directly: the layer tars and `docker load` archive are exactly
what their headers promise, hold exactly the input's bytes, and are deterministic."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from packager import layers
from packager.executor.images.docker_load import _write_archive

BASE = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["tritonserver"], "Labels": {"b": "1"}},
        "history": [{"created": "2026-01-01T00:00:00Z", "comment": "Imported from -"}],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]}}

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=40).filter(
    lambda s: s not in (".", ".."))
FILES = st.dictionaries(
    st.lists(NAME, min_size=1, max_size=4).map("/".join),
    st.tuples(st.binary(max_size=3000), st.sampled_from([0o644, 0o755, 0o600])),
    min_size=1, max_size=8)


def _context(tmp: Path, models: dict[str, dict[str, tuple[bytes, int]]]) -> Path:
    for model, files in models.items():
        for rel, (data, mode) in files.items():
            path = tmp / "models" / model / "1" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)
    return tmp


def _archive(ctx: Path, models: list[str]) -> bytes:
    buf = io.BytesIO()
    _write_archive(buf, ctx, models, "w:1", BASE, {"io.example": "x"}, 0)
    return buf.getvalue()


def _no_prefix_clash(files: dict[str, tuple[bytes, int]]) -> bool:
    # a file cannot also be a directory of another file
    return not any(b.startswith(a + "/") for a in files for b in files)


@settings(max_examples=40, deadline=None)
@given(FILES.filter(_no_prefix_clash), FILES.filter(_no_prefix_clash))
def test_archive_holds_exactly_the_input_bytes_as_docker_load_reads_it(
        tmp_path_factory, first, second) -> None:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("ctx")
    ctx = _context(tmp, {"alpha": first, "beta": second})
    data = _archive(ctx, ["alpha", "beta"])
    with tarfile.open(fileobj=io.BytesIO(data)) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (entry,) = manifest
        config_bytes = outer.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        assert entry["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
        config = json.loads(config_bytes)
        assert entry["RepoTags"] == ["w:1"]
        diff_ids = config["rootfs"]["diff_ids"]
        assert diff_ids[0] == BASE["rootfs"]["diff_ids"][0]  # type: ignore[index]
        assert len(entry["Layers"]) == len(diff_ids) == 3
        assert "base-0/layer.tar" not in outer.getnames()  # the base's layers are not sent
        for model, files, path, diff_id in zip(("alpha", "beta"), (first, second),
                                               entry["Layers"][1:], diff_ids[1:], strict=True):
            layer = outer.extractfile(path).read()  # type: ignore[union-attr]
            assert "sha256:" + hashlib.sha256(layer).hexdigest() == diff_id
            with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
                got = {m.name: m for m in inner.getmembers()}
                regular = {n: m for n, m in got.items() if m.isreg()}
                assert set(regular) == {f"models/{model}/1/{rel}" for rel in files}
                for rel, (content, mode) in files.items():
                    m = regular[f"models/{model}/1/{rel}"]
                    assert inner.extractfile(m).read() == content  # type: ignore[union-attr]
                    assert (m.mode, m.uid, m.gid, m.mtime) == (mode, 1000, 1000, 0)
                assert got["models"].isdir() and got["models"].uid == 0
                assert all(m.uid == 1000 for n, m in got.items() if n != "models")
                # parents come before their children, as layer extraction needs
                names = [m.name for m in inner.getmembers()]
                for i, n in enumerate(names):
                    assert all(names.index(p) < i for p in names if n.startswith(p + "/"))
    assert config["config"]["Labels"] == {"b": "1", "io.example": "x"}
    assert config["config"]["Env"] == ["PATH=/bin"]
    non_empty = [h for h in config["history"] if not h.get("empty_layer")]
    assert len(non_empty) == len(diff_ids)
    assert _archive(ctx, ["alpha", "beta"]) == data  # deterministic: same bytes, same image ID


def test_layer_size_is_the_written_length() -> None:
    members = layers.members([("m/1/" + "x" * 150 + ".bin", 1000, 0o644), ("m/1/a", 0, 0o755)],
                             "models")
    size = layers.layer_size(members, 0)
    written = sum(len(m.header(0)) + (0 if m.is_dir else m.size + layers.padding(m.size))
                  for m in members) + len(layers.END_OF_ARCHIVE)
    assert size == written and size % 512 == 0


def test_base_history_matches_layers_or_falls_back() -> None:
    api = [{"Created": 2, "CreatedBy": "CMD x", "Size": 0},
           {"Created": 1, "CreatedBy": "COPY a", "Size": 10}]
    hist = layers.base_history(api, 1)
    assert [h.get("empty_layer", False) for h in hist] == [False, True]
    assert hist[0]["created_by"] == "COPY a" and hist[0]["created"] == "1970-01-01T00:00:01Z"
    fallback = layers.base_history(api, 2)  # an empty layer: Size cannot tell which entry
    assert len(fallback) == 2 and not any(h.get("empty_layer") for h in fallback)
