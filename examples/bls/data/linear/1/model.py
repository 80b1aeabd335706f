"""A linear model on features, with the weights train.py saved beside this file."""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        with open(os.path.join(os.path.dirname(__file__), "weights.json")) as fh:
            weights = json.load(fh)
        self.w = np.array(weights["w"], dtype=np.float32)
        self.b = np.float32(weights["b"])

    def execute(self, requests):
        out = []
        for request in requests:
            features = pb_utils.get_input_tensor_by_name(request, "FEATURES").as_numpy()
            prediction = (features @ self.w + self.b).astype(np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("PREDICTION", prediction)]))
        return out
