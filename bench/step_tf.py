"""Python TensorFlow side of `npm run bench -- step`: the same two nets in Keras, one training step
as a tf.function (GradientTape + Adam), batch 64 of random data, like bench/step-nets.ts.

Protocol: one JSON request per stdin line {"net": "seed"|"example", "steps": n, "warmup": w},
one JSON reply per stdout line {"ms": [per-step ms...], "version": tf version}. Ends at EOF."""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

L = tf.keras.layers
BATCH = 64


def lrn(x):
    return tf.nn.local_response_normalization(x, depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)


def seed_net():
    return tf.keras.Sequential([
        L.Input((24, 24, 3)),
        L.Conv2D(64, 5, padding="same", activation="relu"),
        L.MaxPooling2D(3, 2, padding="same"),
        L.Lambda(lrn),
        L.Conv2D(64, 5, padding="same", activation="relu"),
        L.Lambda(lrn),
        L.MaxPooling2D(3, 2, padding="same"),
        L.Flatten(),
        L.Dense(384, activation="relu"),
        L.Dense(192, activation="relu"),
        L.Dense(10),
    ])


def example_net():
    # examples/cifar10/model.js
    return tf.keras.Sequential([
        L.Input((32, 32, 3)),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(256, activation="relu"),
        L.Dense(10),
    ])


class Trainer:
    def __init__(self, net):
        self.model = seed_net() if net == "seed" else example_net()
        side = 24 if net == "seed" else 32
        self.opt = tf.keras.optimizers.Adam(1e-3, epsilon=1e-7)
        self.loss = tf.keras.losses.CategoricalCrossentropy(from_logits=True)
        self.x = tf.random.uniform((BATCH, side, side, 3))
        self.y = tf.one_hot(tf.random.uniform((BATCH,), 0, 10, dtype=tf.int32), 10)
        self.step = tf.function(self._step)

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            loss = self.loss(y, self.model(x, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.opt.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def run(self, steps, warmup):
        times = []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            self.step(self.x, self.y).numpy()  # read the loss every step, as the tfjs side does
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
        return times


def main():
    trainers = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        t = trainers.get(req["net"]) or trainers.setdefault(req["net"], Trainer(req["net"]))
        ms = t.run(int(req["steps"]), int(req.get("warmup", 2)))
        print(json.dumps({"ms": ms, "version": tf.__version__}), flush=True)


if __name__ == "__main__":
    main()
