"""`prune` removes only the weights images the packager made that no tagged image uses (pure:
the decision is made over ImageInfo values, no engine needed)."""

from __future__ import annotations

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
