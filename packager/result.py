"""`result.json`: what the push step reads. `image` stays first for the original's readers."""

from __future__ import annotations

import json
from dataclasses import dataclass

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ResultDocument:
    image: str
    model_name: str
    model_version: int
    backend: str
    base_image: str
    dockerfile_sha256: str
    image_id: str | None = None
    pushed_digest: str | None = None
    base_image_id: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> str:
        doc: dict[str, object] = {
            "image": self.image,
            "schema_version": SCHEMA_VERSION,
            "model": {
                "name": self.model_name,
                "version": self.model_version,
                "backend": self.backend,
            },
            "base_image": self.base_image,
            "dockerfile_sha256": self.dockerfile_sha256,
        }
        if self.image_id is not None:
            doc["image_id"] = self.image_id
        if self.base_image_id is not None:
            doc["base_image_id"] = self.base_image_id
        if self.pushed_digest is not None:
            doc["pushed_digest"] = self.pushed_digest
        doc["warnings"] = list(self.warnings)
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ResultDocument:
        """Parse result.json; anything that is not the document this tool writes is a
        ValueError (the caller names the file)."""
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
        model = doc.get("model", {})
        if not isinstance(model, dict):
            raise ValueError("field 'model' is not an object")

        def text_field(d: dict[str, object], key: str, default: str | None = "") -> str | None:
            value = d.get(key, default)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"field {key!r} is not a string")
            return value

        image = text_field(doc, "image", None)
        if not image:
            raise ValueError("field 'image' is missing")
        version = model.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, (int, str)) or \
                not str(version).isdigit() or len(str(version)) > 19:
            raise ValueError("field 'model.version' is not a version number")
        warnings = doc.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise ValueError("field 'warnings' is not a list of strings")
        return cls(
            image=image,
            model_name=text_field(model, "name") or "",
            model_version=int(version),
            backend=text_field(model, "backend") or "",
            base_image=text_field(doc, "base_image") or "",
            dockerfile_sha256=text_field(doc, "dockerfile_sha256") or "",
            image_id=text_field(doc, "image_id", None),
            pushed_digest=text_field(doc, "pushed_digest", None),
            base_image_id=text_field(doc, "base_image_id", None),
            warnings=tuple(warnings),
        )
