"""`prune` removes only the weights images the packager made that no tagged image uses (pure:
the decision is made over ImageInfo values, no engine needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from packager.executor.images.builder import ImageInfo
from packager.executor.prune import OWNER_LABEL, unused_weights

OURS = {OWNER_LABEL: "sha256:base"}


def _img(id_: str, names: tuple[str, ...], diff_ids: str, labels: dict[str, str] | None = None,
         ) -> ImageInfo:
    return ImageInfo(id_, names, labels or {}, tuple(diff_ids))


def test_only_unused_weights_images_the_packager_made_are_pruned() -> None:
    base = _img("b", ("triton:1",), "a")
    used = _img("w1", ("triton-packager/weights:1",), "ab", OURS)
    model = _img("m1", ("model:1",), "abc")
    unused = _img("w2", ("localhost/triton-packager/weights:2",), "ad", OURS)
    # named like a weights image, but not made by the packager: never touched
    foreign = _img("w3", ("triton-packager/weights:3",), "ae")
    # an untagged child does not keep a weights image alive
    dangling = _img("d", (), "adx")
    gone, kept = unused_weights([base, used, model, unused, foreign, dangling])
    assert gone == [unused]
    assert kept == [used]


def test_a_weights_image_with_the_same_layers_as_another_name_is_not_its_own_user() -> None:
    w = _img("w", ("triton-packager/weights:1", "model:1"), "ab", OURS)
    gone, kept = unused_weights([w])
    assert gone == [w] and kept == []


@pytest.mark.docker
def test_prune_removes_only_unused_weights_images_from_buildah_storage(
        tmp_path: Path, buildah_env, capsys) -> None:  # type: ignore[no-untyped-def]
    """In a private buildah storage (never the shared Docker engine): a weights image stays while
    its model image is tagged, goes once it is not; a look-alike without the label stays."""
    import subprocess

    from packager.basechoice import LOCAL_CPU_IMAGE
    from packager.cli import main
    from packager.executor.images import buildah

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.pbtxt").write_text('name: "m"\nplatform: "tensorrt_plan"\nmax_batch_size: 0\n')
    (model / "odahuflow.model.yaml").write_text("name: m\nversion: 1\n")
    (model / "model.plan").write_bytes(os.urandom(2 << 20))
    out = tmp_path / "out"
    assert main(["package", str(model), "-o", str(out), "--builder", "buildah", "--tag", "prune-me:1",
                 "--base-image", LOCAL_CPU_IMAGE, "-q"]) == 0
    weights = next(ln.split()[1] for ln in (out / "context/Dockerfile").read_text().splitlines()
                   if ln.startswith("FROM ") and "triton-packager/weights:" in ln)
    # a look-alike the packager did not make: the base under the weights repository's name
    buildah.tag_image(LOCAL_CPU_IMAGE, "triton-packager/weights:not-ours")
    capsys.readouterr()
    assert main(["prune", "--builder", "buildah"]) == 0
    assert capsys.readouterr().out.split() == []  # still used by prune-me:1
    subprocess.run(["buildah", *buildah_env.flags(), "rmi", "prune-me:1"], check=True,
                   capture_output=True, timeout=120)
    assert main(["prune", "--builder", "buildah", "--dry-run"]) == 0
    assert [n.removeprefix("localhost/") for n in capsys.readouterr().out.split()] == [weights]
    assert buildah.image_id(weights) is not None  # a dry run removes nothing
    assert main(["prune", "--builder", "buildah"]) == 0
    assert [n.removeprefix("localhost/") for n in capsys.readouterr().out.split()] == [weights]
    assert buildah.image_id(weights) is None
    assert buildah.image_id("triton-packager/weights:not-ours") is not None
