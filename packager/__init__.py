"""Triton Packager: a trained model directory in, a ready-to-run Triton image out.

Pure generators (``detect``, ``manifest``, ``modelconfig``, ``modelread``, ``configgen``,
``plan``, ``dockerfile``,
``result``) compute values from values; everything that touches the disk, the clock or
Docker lives in :mod:`packager.executor`.
"""

__version__ = "0.1.0"
