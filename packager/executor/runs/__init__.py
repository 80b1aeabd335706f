"""Runs of user code and downloads: what `train` and `setup` do.

- trainer.py: `train` -- an MLflow project's entry point run in its environment (local,
  virtualenv, conda), its output checked and staged as a model directory.
- mlproject_files.py: reading the project from disk (the MLproject, environment files), for
  the pure parsing in `packager.mlproject`.
- artifact.py: `setup` -- a training artifact downloaded (http/https) and unpacked (.zip, .tar,
  .tar.gz), bounded in size, ratio and time.
"""
