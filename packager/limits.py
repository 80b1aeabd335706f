"""Defaults and limits shared by the CLI, the executor and the Tekton steps, each defined once.

Pure constants and nothing to import: the CLI reads them at start-up without loading the
executor modules that apply them."""

from __future__ import annotations

# package, verify, push: the output directory (--output).
DEFAULT_OUTPUT = "out"
# package --pull: pull a base named by registry reference when missing, or always.
PULL_CHOICES = ("missing", "always")

# push --pusher: the packager's own layer-by-layer push, or the builder's (docker/buildah push).
PUSHERS = ("layers", "builder")
# train --env-manager: this interpreter, a fresh virtualenv, or a conda environment.
ENV_MANAGERS = ("local", "virtualenv", "conda")

# A PEM bundle of CA certificates (--ca-bundle of package, push and setup; the Tekton `ca`
# workspace): the certificates a builder or a download needs, never data.
CA_BUNDLE_MAX = 16 << 20

# train and setup --timeout: at most this many seconds (30 days), so a typo such as 1e12 is
# refused rather than taken as "never".
MAX_TIMEOUT = 30 * 24 * 3600.0
# verify --rtol/--atol: at most this (a larger tolerance accepts any answer).
MAX_TOLERANCE = 1e6

# train: how long the training command may run (--timeout).
DEFAULT_TRAIN_TIMEOUT = 24 * 3600.0

# setup: the whole download and unpack (--timeout), and how large the unpacked files may be
# (--max-size).
DEFAULT_SETUP_TIMEOUT = 3600.0
DEFAULT_SETUP_MAX_BYTES = 64 << 30
# A decompression bomb fits under any byte limit that real weights need (a 64 MiB zip of zeros
# expands to 64 GiB). Model files barely compress (weights: ~1.1x, code and text: ~10x), so
# more than DEFAULT_SETUP_MAX_RATIO times the archive's size is refused (--max-ratio), past a
# floor that artifact.py sets.
DEFAULT_SETUP_MAX_RATIO = 100

# samples.npz beside a model (packager/samples.py): its name, and the most it may hold. Here, not
# in samples.py, so that finding one costs no numpy import (about 60 ms and 15 MB on every
# package run, with or without samples).
SAMPLES_NAME = "samples.npz"
SAMPLES_MAX_COUNT = 1000
SAMPLES_MAX_BYTES = 256 << 20  # read whole, at package time and by verify
