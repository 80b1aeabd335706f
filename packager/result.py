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
        doc = json.loads(text)
        model = doc.get("model", {})
        return cls(
            image=doc["image"],
            model_name=model.get("name", ""),
            model_version=int(model.get("version", 0)),
            backend=model.get("backend", ""),
            base_image=doc.get("base_image", ""),
            dockerfile_sha256=doc.get("dockerfile_sha256", ""),
            image_id=doc.get("image_id"),
            pushed_digest=doc.get("pushed_digest"),
            base_image_id=doc.get("base_image_id"),
            warnings=tuple(doc.get("warnings", ())),
        )
