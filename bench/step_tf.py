"""Python TensorFlow side of `npm run bench -- step`: the same two nets in Keras, one training step
as a tf.function (GradientTape + the example's optimizer), batch 64 of random data, like
bench/step-nets.ts.

Protocol: one JSON request per stdin line {"net": "seed"|"fast", "steps": n, "warmup": w},
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
    return tf.keras.Sequential(
        [
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
        ]
    )


def fast_net():
    # examples/cifar10/models.ts, FAST
    def conv_bn(x, filters):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
        return L.ReLU()(x)

    def residual(x, filters):
        return L.Add()([x, conv_bn(conv_bn(x, filters), filters)])

    pool = lambda x: L.MaxPooling2D(2)(x)  # noqa: E731
    inp = L.Input((32, 32, 3))
    x = conv_bn(inp, 32)
    x = residual(pool(conv_bn(x, 64)), 64)
    x = pool(conv_bn(x, 128))
    x = residual(pool(conv_bn(x, 256)), 256)
    x = L.GlobalMaxPooling2D()(x)
    return tf.keras.Model(inp, L.Dense(10, use_bias=False)(x))


class Trainer:
    def __init__(self, net):
        seed = net == "seed"
        self.model = seed_net() if seed else fast_net()
        side = 24 if seed else 32
        # As the example trains them (models.ts): Adam 1e-3, or Nesterov SGD 0.1 with label smoothing 0.2.
        self.opt = tf.keras.optimizers.Adam(1e-3, epsilon=1e-7) if seed else tf.keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
        self.loss = tf.keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.0 if seed else 0.2)
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
