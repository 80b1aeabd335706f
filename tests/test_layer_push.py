"""The layers pusher's pure parts: which exported layers are worth gzipping, and the record of
how layers were pushed (a hint that never fails a push)."""

from __future__ import annotations

import os
from pathlib import Path

from packager.executor.images.distribution import OCI_LAYER, _challenge, _is_loopback
from packager.executor.images.layer_push import SAMPLED_LAYER, BlobCache, worth_compressing


def test_large_incompressible_layers_go_as_they_are(tmp_path: Path) -> None:
    noise = tmp_path / "noise.tar"
    with noise.open("wb") as fh:
        for _ in range(SAMPLED_LAYER >> 20):
            fh.write(os.urandom(1 << 20))
    assert not worth_compressing(noise)
    zeros = tmp_path / "zeros.tar"
    with zeros.open("wb") as fh:
        fh.truncate(SAMPLED_LAYER * 2)  # sparse: zeros compress
    assert worth_compressing(zeros)
    small = tmp_path / "small.tar"
    small.write_bytes(os.urandom(1 << 20))  # small layers: gzipped without asking
    assert worth_compressing(small)


def test_the_blob_cache_records_and_survives_an_unwritable_home(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "c" / "blobs.json")
    cache.record("sha256:d", "sha256:d", 10, 10, "reg:5000", "a", OCI_LAYER)
    cache.record("sha256:d", "sha256:d", 10, 10, "reg:5000", "b", OCI_LAYER)
    cache.save()
    again = BlobCache(tmp_path / "c" / "blobs.json")
    assert again.get("sha256:d") == {"digest": "sha256:d", "size": 10, "tar_size": 10,
                                     "media_type": OCI_LAYER,
                                     "repositories": {"reg:5000": ["a", "b"]}}
    (tmp_path / "ro").write_text("a file, not a directory")
    BlobCache(tmp_path / "ro" / "blobs.json").save()  # no error: only the hint is lost
    (tmp_path / "bad.json").write_text("{not json")
    assert BlobCache(tmp_path / "bad.json").get("sha256:d") is None


def test_registry_challenges_and_loopback_hosts_are_read() -> None:
    got = _challenge('Bearer realm="https://auth.example/token",service="reg",scope="x:y:pull"')
    assert got == {"scheme": "bearer", "realm": "https://auth.example/token", "service": "reg",
                   "scope": "x:y:pull"}
    assert _challenge('Basic realm="test"')["scheme"] == "basic"
    assert _is_loopback("127.0.0.1:5000") and _is_loopback("localhost:5000")
    assert _is_loopback("[::1]:5000") and not _is_loopback("registry.example.com")
