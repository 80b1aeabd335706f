"""Phases as build targets: declared inputs and outputs, a digest of the inputs recorded beside
the outputs, and nothing redone while that digest is unchanged (Bazel-style).

The phases are declared in packager/phasetable.py; `STEPS` (at the end) binds each to its code:
what its digest covers besides the input bytes, and its action. The runner (`Workspace.run`)
knows no phase by name."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packager.analysis import (
    Options,
    Package,
    analyze_package,
    dockerfile_for,
    image_name_for,
)
from packager.dockerfile import WEIGHTS_CONTEXT, WEIGHTS_TEMPLATE, DockerfileSpec
from packager.errors import BuildError, EnvironmentFault, InputError, bounded
from packager.executor.fs import materialize, staged_dir, write_atomic
from packager.executor.images import registry
from packager.executor.images.builder import Builder
from packager.executor.reader import read_input
from packager.executor.report import Reporter
from packager.executor.serving import prepare
from packager.executor.state.digestcache import DigestCache
from packager.executor.state.lock import DEFAULT_WAIT, exclusive, lock_for
from packager.executor.state.ownership import (
    STATE_DIR,
    check_disjoint,
    check_replaceable,
    claim,
)
from packager.imageref import archive_path, refuse_base_repository
from packager.inputs import InputTree
from packager.layers import DEFAULT_MAX_LAYER_SIZE, LAYERS_LABEL, MAX_LAYER_SIZE_LABEL
from packager.phasetable import (
    DETECT,
    DOCKERFILE,
    PACKAGE,
    REPOSITORY,
    RESULT_FILE,
    Phase,
    chain,
)
from packager.records import detection_document, phase_digest
from packager.result import LEGACY_BUILDER, ModelEntry, ResultDocument

# A placeholder for validating the image name before anything is written.
_PROBE_UUID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class BuildEnv:
    """What the builder stages get from the machine and never bake into the final image."""

    ca_bundle: Path | None = None
    proxies: tuple[tuple[str, str], ...] = ()  # Docker's predefined proxy build arguments
    no_cache: bool = False
    platform: str | None = None
    # Where the base image comes from when it is not a name the builder finds by itself
    # (`oci-archive:PATH[:NAME]`, `docker-archive:...`, `docker-daemon:NAME`); the Dockerfile's
    # FROM names it by Options.base_image.
    base_source: str | None = None
    # `package --pull always`: a base named by registry reference is pulled even when the
    # builder holds an image of that name (a store kept between runs may hold another run's
    # image under it). Not in repr: the phase digest holds the base image's ID already.
    pull_base: bool = field(default=False, repr=False)
    # The largest weights layer the builder assembles (packager.layers.group_files).
    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE


@dataclass
class Outcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    result: ResultDocument | None = None
    analysis: Package | None = None


class Workspace:
    def __init__(self, input_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 output_dir: str | os.PathLike[str],
                 options: Options, reporter: Reporter | None = None, force: bool = False,
                 build_env: BuildEnv | None = None, lock_wait: float = DEFAULT_WAIT,
                 builder: str = "auto") -> None:
        dirs = [input_dir] if isinstance(input_dir, (str, os.PathLike)) else list(input_dir)
        self.input_dirs = [Path(d) for d in dirs]
        self.out = Path(output_dir)
        self.build_env = build_env or BuildEnv()
        # Whether the Dockerfile copies a CA bundle follows from whether there is one.
        self.options = dataclasses.replace(options, env=dataclasses.replace(
            options.env, ca_bundle=self.build_env.ca_bundle is not None))
        self.report = reporter or Reporter("quiet")
        self.force = force
        self.lock_wait = lock_wait
        self.builder_choice = builder
        self._builder: Builder | None = None
        self._base_record: dict[str, str] = {}
        self._pulled_base: str | None = None
        self._serving_digest: tuple[str, ...] = ()  # --serve-with runtime's generated files

    @property
    def builder(self) -> Builder:
        if self._builder is None:
            # An image file as the base: `auto` prefers a builder that reads one.
            self._builder = registry.select(self.builder_choice,
                                            source=self.build_env.base_source)
            if note := registry.fallback_note(self._builder):
                self.report.warn(f"{note} (pass --builder to choose)")
        return self._builder

    # -- state -------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.out / STATE_DIR / "state.json"

    @property
    def digest_file(self) -> Path:
        return self.out / STATE_DIR / "digests.json"

    def _state(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.state_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _record(self, phase: str, digest: str, **extra: str) -> None:
        state = self._state()
        state[phase] = {"digest": digest, **extra}
        write_atomic(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def _fresh(self, phase: str, digest: str) -> bool:
        if self.force:
            return False
        rec = self._state().get(phase)
        return bool(rec and rec.get("digest") == digest and all(
            (self.out / o).exists() for o in STEPS[phase].phase.outputs))

    # -- running -----------------------------------------------------------------------------
    def _check_inputs(self) -> None:
        """Each input once, none inside another (its files would be packaged twice)."""
        if not self.input_dirs:
            raise InputError("no model directory given", fix="give MODEL_DIR [MODEL_DIR ...]")
        seen: dict[Path, Path] = {}
        for d in self.input_dirs:
            real = d.resolve()
            if real in seen:
                raise InputError(f"is given twice (as {seen[real]} and {d})", file=str(d),
                                 fix="give each model directory once")
            seen[real] = d
        # Each input's parents looked up among the others: linear in the inputs (comparing
        # every pair made a few thousand model directories quadratic, issue 21).
        for real, a in seen.items():
            b = next((seen[p] for p in real.parents if p in seen), None)
            if b is not None:
                raise InputError(f"is inside another input, {b}", file=str(a),
                                 fix="give model directories side by side, or one "
                                 "model repository")

    def _check_output_location(self, trees: list[InputTree], phases: list[str]) -> None:
        """The output must not overlap the input, and may only replace the packager's own."""
        for d in self.input_dirs:
            check_disjoint(d, "input directory", self.out, "--output")
        check_replaceable(self.out, option="--output", force=self.force)
        if self.force or not self.out.exists():
            return
        for name in phases:
            for rel in STEPS[name].phase.outputs:
                path = self.out / rel
                if rel.endswith(".json"):
                    if path.is_symlink() or (path.exists() and not path.is_file()):
                        raise InputError(f"{rel} in --output is not a regular file",
                                         file=str(path), fix="remove it, or choose another --output")
                    continue
                check_replaceable(path, option=f"--output's {rel}")

    def _check_writable(self) -> None:
        """A read-only or forbidden --output is an environment fault found before anything slow
        (a base image pull) or written, not at the first write."""
        where = self.out.absolute()
        while not where.exists() and where != where.parent:
            where = where.parent
        if os.statvfs(where).f_flag & os.ST_RDONLY:
            raise EnvironmentFault.from_oserror(OSError(errno.EROFS, os.strerror(errno.EROFS),
                                                        str(where)))
        if not os.access(where, os.W_OK | os.X_OK):
            raise EnvironmentFault.from_oserror(OSError(errno.EACCES, os.strerror(errno.EACCES),
                                                        str(where)))

    def _claim_output(self) -> None:
        """Mark --output as the packager's when this run creates it (or finds it empty); a
        user's directory that --force let us write into stays the user's."""
        try:
            with os.scandir(self.out) as entries:
                empty = not any(entries)
        except FileNotFoundError:
            self.out.mkdir(parents=True)
            empty = True
        if empty:
            claim(self.out, "package output")

    def run(self, target: str) -> Outcome:
        if target not in STEPS:
            raise InputError(f"unknown phase {bounded(target)}", fix=f"use one of {', '.join(STEPS)}")
        # Every check runs before anything is written: bad input -- options included -- leaves
        # no output at all. Only then is the output locked and written.
        # --force: an empty cache, so every file is hashed (and the stable ones remembered).
        cache = DigestCache() if self.force else DigestCache.load(self.digest_file)
        self._check_inputs()
        trees = [read_input(d, cache) for d in self.input_dirs]
        phases = chain(target)
        steps = [STEPS[name] for name in phases]
        self._check_output_location(trees, phases)
        self._check_writable()
        analysis = analyze_package(trees, self.options.model_config,
                                   allow_secret_files=self.options.allow_secret_files)
        # --serve-with runtime, and every samples.npz checked (executor/serving.py).
        prepared = prepare(analysis, self.options.serve_with, self.input_dirs, self.report,
                           self.options.template_dirs)
        analysis, self._serving_digest = prepared.package, prepared.digest
        # the model bytes are read; the build need not hold them
        trees = [t.without_blobs() for t in trees]
        spec = (dockerfile_for(analysis, self.options) if any(s.uses_spec for s in steps)
                else None)
        for step in steps:
            if step.check is not None:
                step.check(self, analysis, spec)
        ca = self.build_env.ca_bundle.read_bytes() if self.build_env.ca_bundle else b""
        for w in analysis.warnings:
            self.report.warn(w)
        if spec is not None:
            for w in spec.base.warnings:
                self.report.warn(w)
        for n in analysis.notes:
            self.report.info(n)
        with exclusive(lock_for(self.out), what=str(self.out), report=self.report,
                       wait=self.lock_wait):
            # Another run may have changed the output while this one waited for the lock.
            self._check_output_location(trees, phases)
            self._claim_output()
            run = _Run(analysis, tuple(d.resolve() for d in self.input_dirs), spec, ca)
            outcome = self._run_locked(trees, run, steps)
            if any(STEPS[name].links_inputs for name in outcome.ran):
                cache.after_own_links()
            write_atomic(self.digest_file, cache.document())
            return outcome

    def _run_locked(self, trees: list[InputTree], run: _Run, steps: list[Step]) -> Outcome:
        outcome = Outcome(analysis=run.analysis)
        if self._base_record:
            state = self._state()
            state["base"] = self._base_record
            write_atomic(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")
        for step in steps:
            name = step.phase.name
            digest = phase_digest(name, trees, *step.inputs(self, run))
            done = self._fresh(name, digest) and (step.kept is None or step.kept(self, name))
            if done:
                self.report.step(f"{name}: up to date", phase=name, status="cached")
                outcome.skipped.append(name)
                continue
            self.report.step(f"{name}: {step.phase.doc}", phase=name, status="running")
            record = step.action(self, run)
            self._record(name, digest, **record)
            outcome.ran.append(name)
        if any(RESULT_FILE in step.phase.outputs for step in steps):
            outcome.result = ResultDocument.from_json((self.out / RESULT_FILE).read_text())
        return outcome

    def _check_image_build(self, analysis: Package, spec: DockerfileSpec | None) -> None:
        """Before anything is written: the image name, the builder and the base image."""
        assert spec is not None  # a step that builds the image uses the Dockerfile
        probe = image_name_for(analysis, self.options, _PROBE_UUID)
        refuse_base_repository(str(probe), spec.base.ref,
                               what="--tag" if self.options.tag else "the image name")
        # A builder that cannot run here (no engine, no buildah) is found before any write.
        self.builder.check_base_source(self.build_env.base_source)
        self._check_weights_template(spec)
        # Before the lock and the first write: a base that cannot be had (no such archive
        # image, no engine for docker-daemon:, a failed pull) leaves no output behind.
        # Before the digest too, which holds the base image's ID.
        self._ensure_base(spec.base.ref)

    def _check_weights_template(self, spec: DockerfileSpec) -> None:
        """A --template-dir weights.Dockerfile.j2 is refused where the builder assembles the
        weights layers itself (packager.layers.WEIGHTS) instead of building that Dockerfile:
        it would be silently ignored."""
        if spec.weights_tag is None or self.builder.weights_from_dockerfile(
                self.build_env.platform):
            return
        for d in self.options.template_dirs:
            template = Path(d) / WEIGHTS_TEMPLATE
            if template.is_file():
                others = [n for n in registry.names()
                          if registry.get(n).weights_from_dockerfile(None)]
                raise InputError(
                    f"template {WEIGHTS_TEMPLATE} (--template-dir) cannot apply: the "
                    f"{self.builder.name} builder assembles the weights layers itself, without "
                    "a Dockerfile", file=str(template),
                    fix=f"remove {WEIGHTS_TEMPLATE} from --template-dir, or build the weights "
                    "from it with --platform OS/ARCH"
                    + (f" or --builder {' or '.join(others)}" if others else ""))

    def _ensure_base(self, name: str) -> None:
        """Bring the base image into the builder. An image file given as the source is read
        again only when it changed (its size, mtime, inode) or the image left the builder."""
        source = self.build_env.base_source
        identity = ""
        if source is not None:
            transport, path = archive_path(source)
            if transport:
                st = path.stat()
                identity = f"{source}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
                seen = self._state().get("base", {})
                if (not self.force and seen.get("identity") == identity
                        and self.builder.image_id(name) == seen.get("image_id")):
                    self.report.step(f"base image {name}: up to date with {path}")
                    return
        image_id = self.builder.ensure_image(source or name, name=name,
                                             pull=self.build_env.pull_base and source is None)
        if self.build_env.pull_base and source is None:
            self._pulled_base = image_id
        if identity:
            self._base_record = {"identity": identity, "image_id": image_id}

    # -- each phase's inputs (beyond the input bytes) and action, bound to it in STEPS ------------
    def _config_inputs(self, run: _Run) -> tuple[str, ...]:
        # The config text depends on the generation options, not only on the input bytes.
        return (repr(self.options.model_config), *self._serving_digest)

    def _context_inputs(self, run: _Run) -> tuple[str, ...]:
        return (*self._config_inputs(run), run.dockerfile.sha256, hashlib.sha256(run.ca).hexdigest())

    def _image_inputs(self, run: _Run) -> tuple[str, ...]:
        # The base image's ID, not only its name: a re-pulled or rebuilt base under the same
        # tag must rebuild the model image. The builder too: each keeps its own images.
        spec = run.dockerfile
        return (*self._config_inputs(run), spec.sha256, self.options.tag or "",
                self.options.image_template, repr(self.build_env), self.builder.name,
                self.builder.image_id(spec.base.ref) or "base image absent")

    def _write_detection(self, run: _Run) -> dict[str, str]:
        write_atomic(self.out / "detect.json", detection_document(run.analysis))
        for m in run.analysis.models:
            self.report.info(
                f"{m.backend.title} model {m.meta.name!r} version"
                f"{'s' if len(m.versions) > 1 else ''} {', '.join(map(str, m.versions))}")
        return {}

    def _write_repository(self, run: _Run) -> dict[str, str]:
        with staged_dir(self.out / "model_repository", "model repository",
                        force=True) as stage:
            counts = materialize(run.analysis.plan, list(run.roots), stage)
        self.report.info(f"model repository: {self.out / 'model_repository'} ({counts})")
        return {}

    def _write_context(self, run: _Run) -> dict[str, str]:
        spec = run.dockerfile
        with staged_dir(self.out / "context", "build context", force=True) as stage:
            materialize(run.analysis.plan, list(run.roots), stage, by_layer=True)
            for rel, text in spec.context_texts:
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                (stage / rel).write_text(text, encoding="utf-8")
            if spec.ca_bundle and self.build_env.ca_bundle is not None:
                (stage / "build-secrets").mkdir()
                shutil.copyfile(self.build_env.ca_bundle, stage / "build-secrets" / "ca.crt")
            (stage / "Dockerfile").write_text(spec.text, encoding="utf-8")
        self.report.info(f"Dockerfile: {self.out / 'context' / 'Dockerfile'}")
        return {}

    def _build_image(self, run: _Run) -> dict[str, str]:
        """Build the image, then (only then) write result.json."""
        spec = run.dockerfile
        image = image_name_for(run.analysis, self.options, str(uuid.uuid4()))
        result_path = self.out / RESULT_FILE
        if result_path.exists():
            result_path.unlink()  # a failed build must not leave the previous image's name
        buildargs = dict(self.build_env.proxies)
        if self.options.env.pip_index_url:
            buildargs["PIP_INDEX_URL"] = self.options.env.pip_index_url
        if self._pulled_base is not None and \
                self.builder.image_id(spec.base.ref) != self._pulled_base:
            raise BuildError(f"base image {spec.base.ref} changed in {self.builder.name}'s "
                             "store after it was pulled", fix="run one build at a time on a "
                             "store (one cache claim per lane)")
        if spec.weights_tag is not None:
            self._weights_image(spec.weights_tag, spec.base.ref)
        image_id = self.builder.build_image(
            self.out / "context", str(image), self.report, buildargs=buildargs,
            nocache=self.build_env.no_cache, platform=self.build_env.platform)

        doc = ResultDocument(
            image=str(image),
            models=tuple(ModelEntry(m.meta.name, m.versions, m.backend.key)
                         for m in run.analysis.models),
            base_image=spec.base.ref,
            dockerfile_sha256=spec.sha256,
            image_id=image_id,
            base_image_id=self.builder.image_id(spec.base.ref),
            builder=self.builder.name,
            warnings=(*run.analysis.warnings, *spec.base.warnings),
        )
        write_atomic(result_path, doc.to_json())
        self.report.info(f"image {image} ({image_id[:19]})", image=str(image), image_id=image_id)
        return {"image": str(image), "image_id": image_id, "builder": self.builder.name}

    def _weights_image(self, tag: str, base_ref: str) -> None:
        """Build context/weights/ as `tag` unless an image built from the same weights on the
        same base image (by ID) is already there."""
        base_id = self.builder.ensure_image(base_ref)
        label = "io.triton-packager.weights.base-id"
        bound = MAX_LAYER_SIZE_LABEL
        have = self.builder.image_labels(tag) or {}
        if not self.build_env.no_cache and have.get(label) == base_id and \
                have.get(bound, str(self.build_env.max_layer_size)) == \
                str(self.build_env.max_layer_size) and \
                (LAYERS_LABEL in have
                 or self.builder.weights_from_dockerfile(self.build_env.platform)):
            self.report.step(f"package: weights image {tag[:40]}... is up to date")
            return
        self.report.step("package: building the weights image (once per weights digest)")
        self.builder.build_weights(self.out / "context" / WEIGHTS_CONTEXT, tag, base_ref,
                                   self.report, labels={label: base_id,
                                                        bound: str(self.build_env.max_layer_size)},
                                   nocache=self.build_env.no_cache,
                                   platform=self.build_env.platform,
                                   max_layer_size=self.build_env.max_layer_size)

    def _image_still_there(self, phase: str) -> bool:
        rec = self._state().get(phase, {})
        image_id = rec.get("image_id")
        if not image_id:
            return False
        if rec.get("builder", LEGACY_BUILDER) != self.builder.name:
            return False
        return self.builder.image_exists(rec.get("image", ""), image_id)


@dataclass(frozen=True)
class _Run:
    """What the phases of one run read: the analysis, the input directories (resolved), the
    rendered Dockerfile (when a step of the run uses it) and the CA bundle's bytes."""

    analysis: Package
    roots: tuple[Path, ...]
    spec: DockerfileSpec | None
    ca: bytes

    @property
    def dockerfile(self) -> DockerfileSpec:
        assert self.spec is not None, "a step that reads the Dockerfile sets uses_spec"
        return self.spec


@dataclass(frozen=True)
class Step:
    """A phase of packager.phasetable bound to its code: what its digest covers besides the
    input bytes, its action (which returns what to record beside the digest), and what the
    runner does around it."""

    phase: Phase
    inputs: Callable[[Workspace, _Run], tuple[str, ...]]
    action: Callable[[Workspace, _Run], dict[str, str]]
    uses_spec: bool = False  # reads the rendered Dockerfile (rendered before anything is written)
    # Hard-links input files into the output: the digest cache looks at their ctimes again.
    links_inputs: bool = False
    # More checks before anything is written (image name, builder, base image).
    check: Callable[[Workspace, Package, DockerfileSpec | None], None] | None = None
    # Whether what the phase made outside --output (an image) is still there; else it reruns.
    kept: Callable[[Workspace, str], bool] | None = None


STEPS: dict[str, Step] = {s.phase.name: s for s in (
    Step(DETECT, Workspace._config_inputs, Workspace._write_detection),
    Step(REPOSITORY, Workspace._config_inputs, Workspace._write_repository, links_inputs=True),
    Step(DOCKERFILE, Workspace._context_inputs, Workspace._write_context, uses_spec=True,
         links_inputs=True),
    Step(PACKAGE, Workspace._image_inputs, Workspace._build_image, uses_spec=True,
         check=Workspace._check_image_build, kept=Workspace._image_still_there),
)}
