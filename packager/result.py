"""`result.json`: what the result step reads. The original result step reads it as a flat map of
strings, `image` first: nested objects, numbers and lists break it, so every value is a string.
Details (warnings, notes, every model's config) are in detect.json beside it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

SCHEMA_VERSION = "2"
# The builder of a result.json written before there was a choice: the Docker engine. Which
# names are builders is the executor's registry's to say (executor.verify.load_result checks).
LEGACY_BUILDER = "docker"
_BUILDER_RE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_VERSIONS_RE = re.compile(r"[0-9]{1,19}(?:,[0-9]{1,19}){0,999}")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    versions: tuple[int, ...]
    backend: str


@dataclass(frozen=True)
class ResultDocument:
    image: str
    models: tuple[ModelEntry, ...]
    base_image: str
    dockerfile_sha256: str
    image_id: str | None = None
    pushed_digest: str | None = None  # sha256:... of the pushed manifest
    pushed_image: str | None = None  # the digest reference: repository@sha256:...
    base_image_id: str | None = None
    builder: str = LEGACY_BUILDER  # the builder that holds the image: push uses the same one
    warnings: tuple[str, ...] = ()

    # The first model names the image; a one-model package is described by these alone.
    @property
    def model_name(self) -> str:
        return self.models[0].name

    @property
    def model_version(self) -> int:
        return max(self.models[0].versions)

    @property
    def backend(self) -> str:
        return self.models[0].backend

    def to_json(self) -> str:
        doc: dict[str, str] = {
            "image": self.image,
            "schema_version": SCHEMA_VERSION,
            "model_name": self.model_name,
            "model_version": str(self.model_version),
            "backend": self.backend,
            "models": ",".join(m.name for m in self.models),
        }
        for m in self.models:
            doc[f"model.{m.name}.versions"] = ",".join(map(str, m.versions))
            doc[f"model.{m.name}.backend"] = m.backend
        doc["base_image"] = self.base_image
        doc["dockerfile_sha256"] = self.dockerfile_sha256
        doc["builder"] = self.builder
        for key in ("image_id", "base_image_id", "pushed_digest", "pushed_image"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        if self.warnings:
            doc["warnings"] = "\n".join(self.warnings)
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ResultDocument:
        """Parse result.json; anything that is not the document this tool writes is a
        ValueError (the caller names the file)."""
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
        for key, value in doc.items():
            if not isinstance(value, str):
                raise ValueError(f"field {key!r} is not a string (result.json holds only "
                                 "strings)")

        def field(key: str) -> str | None:
            value = doc.get(key)
            return value if isinstance(value, str) else None

        image = field("image")
        if not image:
            raise ValueError("field 'image' is missing")
        builder = field("builder") or LEGACY_BUILDER
        if not _BUILDER_RE.fullmatch(builder):
            raise ValueError(f"field 'builder' is {builder[:40]!r}, not a builder's name")
        names = [n for n in (field("models") or field("model_name") or "").split(",") if n]
        if not names:
            raise ValueError("field 'models' is missing")
        models = []
        for name in names:
            versions = field(f"model.{name}.versions")
            if versions is None and len(names) == 1:
                versions = field("model_version")
            if versions is None or not _VERSIONS_RE.fullmatch(versions):
                raise ValueError(f"field 'model.{name}.versions' is not a list of versions")
            backend = field(f"model.{name}.backend") or (
                field("backend") if len(names) == 1 else None) or ""
            models.append(ModelEntry(name, tuple(int(v) for v in versions.split(",")),
                                     backend))
        return cls(
            image=image,
            models=tuple(models),
            base_image=field("base_image") or "",
            dockerfile_sha256=field("dockerfile_sha256") or "",
            image_id=field("image_id"),
            pushed_digest=field("pushed_digest"),
            pushed_image=field("pushed_image"),
            base_image_id=field("base_image_id"),
            builder=builder,
            warnings=tuple((field("warnings") or "").splitlines()),
        )
