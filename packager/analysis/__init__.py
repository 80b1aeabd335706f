"""The analysis (pure): input trees and options in; what they hold and what to build for them
out. One module per thing analysed:

- `directory.py`   one model directory (a model file, config.pbtxt or manifest at its top)
- `repository.py`  a Triton model repository, or one of its model directories given alone
- `ensemble.py`    an ensemble's directory (its config only)
- `config.py`      the one check sequence every model's config passes, given or generated
- `package.py`     every input of one image, checked one by one and against each other
- `image.py`       what to build for a package: base image, Dockerfile, image name
- `model.py`, `options.py`   the values: one model checked (`Analysis`), the user's `Options`

Plans are built in `packager.plan`; what an analysis records (detect.json, phase digests) is
`packager.records`; the runner that executes phases on disk is `packager.executor.phases`.
The names below are the analysis's API, importable from here as before the split.
"""

from packager.analysis.directory import analyze
from packager.analysis.image import base_image_for, dockerfile_for, image_name_for
from packager.analysis.model import Analysis
from packager.analysis.options import HEALTHCHECK_CHOICES, Options
from packager.analysis.package import Package, analyze_package, as_package, check_package

__all__ = [
    "HEALTHCHECK_CHOICES",
    "Analysis",
    "Options",
    "Package",
    "analyze",
    "analyze_package",
    "as_package",
    "base_image_for",
    "check_package",
    "dockerfile_for",
    "image_name_for",
]
