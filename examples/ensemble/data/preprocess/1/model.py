"""Standardise raw features with the statistics train.py saved beside this file."""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        with open(os.path.join(os.path.dirname(__file__), "stats.json")) as fh:
            stats = json.load(fh)
        self.mean = np.array(stats["mean"], dtype=np.float32)
        self.std = np.array(stats["std"], dtype=np.float32)

    def execute(self, requests):
        out = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "RAW").as_numpy()
            features = ((raw - self.mean) / self.std).astype(np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("FEATURES", features)]))
        return out
