"""Fit y = -2x + 0.5 in TensorFlow and freeze it into a GraphDef (model.graphdef)."""

import argparse
import os

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

x = np.linspace(-1, 1, 256, dtype=np.float32)[:, None]
y = -2 * x + 0.5
w, b = tf.Variable([[0.0]]), tf.Variable([0.0])
opt = tf.keras.optimizers.SGD(learning_rate=0.5)
for _ in range(args.epochs):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((x @ w + b - y) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b], strict=True))
print(f"w={w.numpy().item():.3f} b={b.numpy().item():.3f} loss={loss.numpy():.5f}")


@tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="INPUT0")])
def serve(INPUT0):  # the tensor name Triton sees
    return tf.identity(INPUT0 @ w + b, name="OUTPUT0")


frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
with open(os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "model.graphdef"), "wb") as fh:
    fh.write(frozen.graph.as_graph_def().SerializeToString())
