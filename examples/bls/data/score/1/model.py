"""BLS: call the `linear` model from Python, then turn its prediction into a probability."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            features = pb_utils.get_input_tensor_by_name(request, "FEATURES")
            reply = pb_utils.InferenceRequest(
                model_name="linear", requested_output_names=["PREDICTION"],
                inputs=[pb_utils.Tensor("FEATURES", features.as_numpy())]).exec()
            if reply.has_error():
                raise pb_utils.TritonModelException(reply.error().message())
            y = pb_utils.get_output_tensor_by_name(reply, "PREDICTION").as_numpy()
            probability = (1.0 / (1.0 + np.exp(-y))).astype(np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("PROBABILITY", probability)]))
        return out
