"""Fit the two models of the ensemble: feature statistics (preprocess) and a linear model on
the standardised features (linear), y = w . (x - mean) / std + b.

Writes preprocess/1/stats.json and linear/1/weights.json into $ODAHUFLOW_OUTPUT_DIR; the
trainer adds data/ (each model's config.pbtxt and model.py, and the ensemble's config).
"""

import argparse
import json
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=512)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
true_w, true_b = np.array([1.5, -2.0, 0.5, 3.0]), 0.25
x = rng.normal(loc=[10, -5, 0, 2], scale=[2, 1, 3, 0.5], size=(args.samples, 4))
y = x @ true_w + true_b + rng.normal(scale=0.01, size=args.samples)
mean, std = x.mean(axis=0), x.std(axis=0)
z = np.hstack([(x - mean) / std, np.ones((args.samples, 1))])
coef = np.linalg.lstsq(z, y, rcond=None)[0]
print(f"fitted w={np.round(coef[:4], 3)} b={coef[4]:.3f} on standardised features")

out = os.environ["ODAHUFLOW_OUTPUT_DIR"]
for path, doc in (("preprocess/1/stats.json", {"mean": mean.round(6).tolist(),
                                               "std": std.round(6).tolist()}),
                  ("linear/1/weights.json", {"w": coef[:4].round(6).tolist(),
                                             "b": round(float(coef[4]), 6)})):
    os.makedirs(os.path.join(out, os.path.dirname(path)), exist_ok=True)
    with open(os.path.join(out, path), "w") as fh:
        json.dump(doc, fh)
