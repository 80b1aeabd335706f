"""Run the packaged example image and print one inference (used by `make demo`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

from packager.executor.container import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", default="out")
    args = parser.parse_args()
    result = json.loads((Path(args.output) / "result.json").read_text())
    image, name = result["image"], result["model_name"]  # result.json: flat strings
    a = np.array([1, 2, 3, 4], dtype=np.float32)
    b = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    with serve(image) as running:
        print(f"{image} is serving {name} at http://{running.http_url} (container will stop)")
        client = httpclient.InferenceServerClient(running.http_url)
        inputs = [httpclient.InferInput("INPUT0", [4], "FP32"),
                  httpclient.InferInput("INPUT1", [4], "FP32")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)
        response = client.infer(name, inputs)
        print(f"INPUT0  = {a.tolist()}\nINPUT1  = {b.tolist()}")
        print(f"OUTPUT0 = {response.as_numpy('OUTPUT0').tolist()}  # (INPUT0 + INPUT1) * scale")
        print(f"OUTPUT1 = {response.as_numpy('OUTPUT1').tolist()}  # (INPUT0 - INPUT1) * scale")
        print(
            "\nRun it yourself:\n"
            f"  docker run --rm --shm-size=256m -p 8000:8000 -p 8001:8001 {image}\n"
            f"  curl -s -X POST localhost:8000/v2/models/{name}/infer -d '"
            '{"inputs":[{"name":"INPUT0","shape":[4],"datatype":"FP32","data":[1,2,3,4]},'
            '{"name":"INPUT1","shape":[4],"datatype":"FP32","data":[0.5,0.5,0.5,0.5]}]}\''
        )


if __name__ == "__main__":
    main()
