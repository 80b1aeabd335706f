"""A tiny Python-backend model: OUTPUT0 = (INPUT0 + INPUT1) * s, OUTPUT1 = (INPUT0 - INPUT1) * s.

The scale comes from `scale.json`, which `train.py` fits; the server reads it next to this file.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        here = os.path.dirname(__file__)
        path = os.path.join(here, "scale.json")
        self.scale = 1.0
        if os.path.exists(path):
            with open(path) as fh:
                self.scale = float(json.load(fh)["scale"])

    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            out0 = pb_utils.Tensor("OUTPUT0", ((a + b) * self.scale).astype(np.float32))
            out1 = pb_utils.Tensor("OUTPUT1", ((a - b) * self.scale).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out0, out1]))
        return responses
