"""A small MLP in plain numpy (hand-written backprop) trained with adamcore: switch the optimizer with one argument.

    PYTHONPATH=build/python python3 examples/python/train_mlp.py --optimizer adafix

The task: classify points of three interleaved spirals (generated, no download). Two layers, tanh, softmax.
AdaFix runs its exact form: after each update, grad_fn returns the same minibatch's gradients at the new weights.
"""
import argparse
import time

import adamcore
import numpy as np


def spirals(n_per_class, rng):
    xs, ys = [], []
    for c in range(3):
        r = np.linspace(0.1, 1, n_per_class)
        angle = np.linspace(c * 2.1, c * 2.1 + 4, n_per_class) + rng.normal(0, 0.2, n_per_class)
        xs.append(np.stack([r * np.sin(angle), r * np.cos(angle)], 1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


class MLP:
    def __init__(self, hidden, rng):
        self.w1 = (rng.normal(0, 1, (2, hidden)) / np.sqrt(2)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = (rng.normal(0, 1, (hidden, 3)) / np.sqrt(hidden)).astype(np.float32)
        self.b2 = np.zeros(3, np.float32)

    @property
    def params(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def loss_and_grads(self, x, y):
        h = np.tanh(x @ self.w1 + self.b1)
        logits = h @ self.w2 + self.b2
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
        d = p
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        dh = (d @ self.w2.T) * (1 - h * h)
        grads = [x.T @ dh, dh.sum(0), h.T @ d, d.sum(0)]
        return loss, [g.astype(np.float32) for g in grads]

    def accuracy(self, x, y):
        return float(((np.tanh(x @ self.w1 + self.b1) @ self.w2 + self.b2).argmax(1) == y).mean())


OPTIMIZERS = {
    "adam": lambda params, lr: adamcore.Adam(params, lr=lr),
    "amsgrad": lambda params, lr: adamcore.Adam(params, lr=lr, amsgrad=True),
    "adafix": lambda params, lr: adamcore.AdaFix(params, lr=lr),
    "sgd": lambda params, lr: adamcore.SGD(params, lr=lr * 10, momentum=0.9),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x, y = spirals(400, rng)
    model = MLP(64, rng)
    opt = OPTIMIZERS[args.optimizer](model.params, args.lr)
    start, steps = time.perf_counter(), 0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(y))
        for i in range(0, len(y), 64):
            batch = order[i:i + 64]
            loss, grads = model.loss_and_grads(x[batch], y[batch])
            if isinstance(opt, adamcore.AdaFix):
                opt.step(grads, grad_fn=lambda: model.loss_and_grads(x[batch], y[batch])[1])
            else:
                opt.step(grads)
            steps += 1
        if epoch == 1 or epoch % max(1, args.epochs // 6) == 0:
            full_loss, _ = model.loss_and_grads(x, y)
            extra = f"  L={opt.lipschitz:.2f} v updated={opt.v_updated}" if isinstance(opt, adamcore.AdaFix) else ""
            print(f"{args.optimizer:8s} epoch {epoch:3d}  loss {full_loss:.4f}  accuracy {model.accuracy(x, y):.3f}{extra}")
    print(f"{steps} steps in {time.perf_counter() - start:.2f} s (numpy forward/backward included)")
    return model.accuracy(x, y)


if __name__ == "__main__":
    main()
