"""Fit y = 3x - 1 with one Dense unit in TensorFlow and save it as a SavedModel directory.

It also writes samples.npz: a few inputs and the outputs the model gave for them, which
`triton-packager verify` sends to the served image and compares (see the README).
"""

import argparse
import os

import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

x = np.linspace(-1, 1, 256, dtype=np.float32)[:, None]
y = 3 * x - 1
w = tf.Variable([[0.0]])
b = tf.Variable([0.0])
opt = tf.keras.optimizers.SGD(learning_rate=0.5)
for _ in range(args.epochs):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((x @ w + b - y) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b], strict=True))
print(f"w={w.numpy().item():.3f} b={b.numpy().item():.3f} loss={loss.numpy():.5f}")


class Dense(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w, self.b = w, b

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="INPUT0")])
    def serve(self, INPUT0):  # the tensor name Triton sees
        return {"OUTPUT0": INPUT0 @ self.w + self.b}


module = Dense()
out = os.environ["ODAHUFLOW_OUTPUT_DIR"]
tf.saved_model.save(module, os.path.join(out, "model.savedmodel"),
                    signatures={"serving_default": module.serve})

# Samples for `verify`: whole requests (batch 1 and batch 3) and the model's answers to them.
rng = np.random.default_rng(0)
samples = {}
for i, batch in enumerate((1, 3)):
    inputs = rng.uniform(-2, 2, (batch, 1)).astype(np.float32)
    samples[f"input.INPUT0.{i}"] = inputs
    samples[f"output.OUTPUT0.{i}"] = module.serve(tf.constant(inputs))["OUTPUT0"].numpy()
np.savez(os.path.join(out, "samples.npz"), **samples)
