"""The weights image assembled directly: the layer tars and `docker load` archive are exactly
what their headers promise, hold exactly the input's bytes, and are deterministic."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from hypothesis import example, given, settings
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
    assert config["config"]["Labels"] == {"b": "1", "io.example": "x",
                                          layers.LAYERS_LABEL: ",".join(diff_ids[1:])}
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


# --- bounded layers ----------------------------------------------------------------------------

SIZES = st.lists(st.tuples(NAME, st.integers(0, 40 << 20), st.sampled_from([0o644, 0o755])),
                 min_size=0, max_size=30, unique_by=lambda t: t[0])


@settings(max_examples=60, deadline=None)
@given(SIZES, st.integers(16 << 20, 64 << 20))
# Found by Hypothesis: a file alone whose estimate passed the budget but whose layer fits.
@example([("a", 33_354_249, 0o644)], 33_377_792)
def test_groups_respect_the_bound_keep_every_file_whole_and_are_deterministic(
        files, bound) -> None:  # type: ignore[no-untyped-def]
    entries = [(f"m/1/{name}", size, mode) for name, size, mode in files]
    groups = layers.group_files("m", entries, bound)
    assert groups == layers.group_files("m", list(reversed(entries)), bound)
    carried = [f for g in groups for f in g.files]
    assert sorted(carried) == sorted(entries)  # every file once, never split
    for g in groups:
        assert g.size() <= bound or (g.oversized and len(g.files) == 1)
        assert g.oversized == (g.size() > bound)
        assert [g.part, g.parts] == [groups.index(g) + 1, len(groups)]


def test_a_changed_file_of_the_same_size_changes_only_its_layer(tmp_path: Path) -> None:
    from packager.executor.images import weights

    files = {f"w{i}.bin": (bytes([i]) * (7 << 20), 0o644) for i in range(6)}
    ctx = _context(tmp_path / "a", {"m": files})
    before = [weights.write_layer(None, ctx, g)[0] for g in weights.plan(ctx, 16 << 20)]
    assert len(before) == 3
    (ctx / "models/m/1/w3.bin").write_bytes(b"x" * (7 << 20))
    after = [weights.write_layer(None, ctx, g)[0] for g in weights.plan(ctx, 16 << 20)]
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, False, True]


def test_parse_size_reads_units_and_refuses_what_is_not_a_size() -> None:
    assert layers.parse_size("1GiB") == layers.parse_size("1g") == 1 << 30
    assert layers.parse_size("2GB") == 2 * 10**9
    assert layers.parse_size("536870912") == 512 << 20
    for bad in ("", "x", "1.2.3G", "-1G", "1Q", "GiB", "nan"):
        try:
            layers.parse_size(bad)
        except ValueError as exc:
            assert "size" in str(exc)
        else:
            raise AssertionError(bad)
    try:
        layers.check_max_layer_size(1 << 20)
    except ValueError as exc:
        assert "minimum" in str(exc)
    else:
        raise AssertionError("1 MiB accepted")


def test_a_bad_layer_bound_is_exit_2_before_anything_is_written(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from packager.cli import main

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.pbtxt").write_text('name: "m"\nplatform: "tensorrt_plan"\nmax_batch_size: 0\n')
    (model / "odahuflow.model.yaml").write_text("name: m\nversion: 1\n")
    (model / "model.plan").write_bytes(b"\0" * 1024)
    for bad, why in (("abc", "not a size"), ("1MiB", "minimum"), ("-5G", "not a size")):
        out = tmp_path / f"out-{why.replace(' ', '-')}-{bad}"
        assert main(["package", str(model), "-o", str(out), f"--max-layer-size={bad}"]) == 2
        err = capsys.readouterr().err
        assert "--max-layer-size" in err and why in err and "fix:" in err
        assert not out.exists()
