"""The weights layers buildah pulls over loopback HTTP (executor/images/layer_server.py): served
byte for byte as they were hashed, to no one without the URL's token, and a file that changes
between the hash and the read named as the cause. The docker-tier test shows what it is for: a
cold buildah package needs one copy of the weights beside the image, not two."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from packager.executor.images import weights
from packager.executor.images.layer_server import LayerServer, served_layers
from packager.layers import WEIGHTS


def _context(root: Path, sizes: dict[str, int]) -> Path:
    """A weights context: context/weights/models/<model>/1/<file> of random bytes."""
    for name, size in sizes.items():
        path = root / WEIGHTS.context_dir / name / "1" / "model.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(size))
    return root


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert int(resp.headers["Content-Length"]) > 0
        data: bytes = resp.read()
        return data


def test_layers_are_served_as_hashed_and_only_with_the_token(tmp_path: Path) -> None:
    context = _context(tmp_path / "weights", {"a": 3 << 20, "b": 1 << 20})
    groups = weights.plan(context, 16 << 20)
    served = served_layers(context, groups)
    assert [s.group for s in served] == groups
    with LayerServer(context, {s.digest.removeprefix("sha256:"): s for s in served}) as server:
        for layer in served:
            url = server.url(layer.digest)
            assert url.startswith("http://127.0.0.1:")
            data = _get(url)
            assert f"sha256:{hashlib.sha256(data).hexdigest()}" == layer.digest
            assert len(data) == layer.size
            sink = io.BytesIO()
            weights.write_layer(sink, context, layer.group)
            assert sink.getvalue() == data  # what the image is made of, byte for byte
            token = url.split("/")[3]
            for bad in (url.replace(token, "0" * len(token)), url + "0",
                        url.rsplit("/", 1)[0] + "/" + "f" * 64):
                with pytest.raises(urllib.error.HTTPError) as err:
                    _get(bad)
                assert err.value.code == 404
        assert server.failure is None


def test_a_file_changed_between_hash_and_read_is_named(tmp_path: Path) -> None:
    context = _context(tmp_path / "weights", {"m": 1 << 20})
    (layer,) = served_layers(context, weights.plan(context, 16 << 20))
    # the same size, other bytes: only the digest can tell
    (context / WEIGHTS.context_dir / "m" / "1" / "model.bin").write_bytes(os.urandom(1 << 20))
    with LayerServer(context, {layer.digest.removeprefix("sha256:"): layer}) as server:
        with pytest.raises(http.client.IncompleteRead):  # cut short, as buildah would see it
            _get(server.url(layer.digest))
        failure = server.failure
    assert failure is not None and "'m' changed while the weights image was made" in \
        failure.message
    assert failure.exit_code == 3 and failure.fix is not None


@pytest.mark.docker
def test_a_cold_buildah_package_needs_one_copy_of_the_weights_beside_the_image(
        tmp_path: Path, buildah_env: object, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The output directory and buildah's temporary files on one filesystem with room for
    the packaged output plus the weights once more (and 12 MiB): the weights image is made.
    Writing the layers as layout blobs needed them twice more there (the layout, buildah's
    temporary copy) and failed with ENOSPC."""
    from test_faults import tmpfs

    from packager.basechoice import LOCAL_CPU_IMAGE
    from packager.cli import main
    from packager.executor.images import buildah as bb

    bb.ensure_image(LOCAL_CPU_IMAGE)  # the base in storage (the session's, from buildah_env)
    weights_mib = 48
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.pbtxt").write_text('name: "onecopy"\nplatform: "tensorrt_plan"\n'
                                        "max_batch_size: 0\n")
    (model / "odahuflow.model.yaml").write_text("name: onecopy\nversion: 1\n")
    (model / "model.plan").write_bytes(os.urandom(weights_mib << 20))
    with tmpfs(tmp_path / "fs", "1g") as fs:
        out, tmp = fs / "out", fs / "tmp"
        tmp.mkdir()
        # everything package writes but the weights image: the model tree and both contexts
        assert main(["dockerfile", str(model), "-o", str(out), "-q"]) == 0
        st = os.statvfs(fs)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        size = used + ((weights_mib + 12) << 20)
        subprocess.run(["mount", "-o", f"remount,size={size}", str(fs)], check=True,
                       capture_output=True, timeout=30)
        monkeypatch.setenv("TMPDIR", str(tmp))  # buildah's temporary copy goes here too
        capsys.readouterr()
        code = main(["package", str(model), "-o", str(out), "--builder", "buildah", "--tag",
                     "onecopy:1", "--base-image", LOCAL_CPU_IMAGE, "-q"])
        err = capsys.readouterr().err
        assert code == 0, err
        assert list(tmp.iterdir()) == []
        weights_tag = _weights_tag(out)
    # both images go: an unused weights image left in the session's storage is prune's to find
    bb.BuildahBuilder().remove_image("onecopy:1")
    bb.BuildahBuilder().remove_image(weights_tag)


def _weights_tag(out: Path) -> str:
    return next(ln.split()[1] for ln in (out / "context/Dockerfile").read_text().splitlines()
                if ln.startswith("FROM ") and "triton-packager/weights:" in ln)
