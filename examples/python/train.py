"""Fit the one parameter of the add-sub model: the scale s in y = s * (a + b).

Writes scale.json into $ODAHUFLOW_OUTPUT_DIR; the trainer adds data/ (model.py, config.pbtxt).
"""

import argparse
import json
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--true-scale", type=float, default=2.0)
parser.add_argument("--samples", type=int, default=256)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
a, b = rng.normal(size=(2, args.samples))
y = args.true_scale * (a + b) + rng.normal(scale=0.01, size=args.samples)
x = (a + b)[:, None]
scale = float(np.linalg.lstsq(x, y, rcond=None)[0][0])
print(f"fitted scale {scale:.4f} from {args.samples} samples (true {args.true_scale})")

out = os.environ["ODAHUFLOW_OUTPUT_DIR"]
with open(os.path.join(out, "scale.json"), "w") as fh:
    json.dump({"scale": round(scale, 3)}, fh)
