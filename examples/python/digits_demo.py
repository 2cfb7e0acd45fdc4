"""adamcore's main demo: the AdaFix paper's MNIST comparison, in miniature.

A two-layer MLP (numpy, hand-written backprop) classifies scikit-learn's bundled 8x8 digits (no download), trained
with SGD+momentum, Adam, AMSGrad and AdaFix through `import adamcore`, several seeds each. As in the paper
(seed 001, section 4): the adaptive methods use a fixed lr of 1e-3, SGD+momentum starts at 0.1 and is divided by
10 at 50% and 75% of training (a scheduler writing param_groups[0]['lr']). AdaFix runs its exact form: after each
update, the same minibatch's gradient at the new weights refines its Lipschitz estimate.

    make demo                                       # or:
    PYTHONPATH=build/python python3 examples/python/digits_demo.py --epochs 40 --seeds 5 --out build/demo
"""
import argparse
import os
import time

# One BLAS thread, set before numpy loads its BLAS: the MLP's matrix products are small, and BLAS threads that
# spin between them made the run time and the us/step column swing 4-10x with the machine's load (a user's
# OPENBLAS_NUM_THREADS / OMP_NUM_THREADS still win).
BLAS_THREADS = {name: os.environ.setdefault(name, "1") for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from tqdm import tqdm  # noqa: E402

import adamcore  # noqa: E402

OPTIMIZERS = ("sgdm", "adam", "amsgrad", "adafix")
LABELS = {"sgdm": "SGD+momentum", "adam": "Adam", "amsgrad": "AMSGrad", "adafix": "AdaFix"}
PAPER_MNIST = {"sgdm": "98.72 ± 0.02", "adam": "98.70 ± 0.03", "amsgrad": "98.72 ± 0.07", "adafix": "98.75 ± 0.02"}


def load(seed):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    order = np.random.default_rng(1234).permutation(len(y))  # one fixed split for every run
    test, train = order[:360], order[360:]
    return x[train], y[train], x[test], y[test]


class MLP:
    """64 -> hidden (ReLU) -> 10, softmax cross-entropy; float32 parameters updated in place by adamcore."""

    def __init__(self, hidden, rng):
        self.w1 = (rng.standard_normal((64, hidden)) * np.sqrt(2 / 64)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = (rng.standard_normal((hidden, 10)) * np.sqrt(1 / hidden)).astype(np.float32)
        self.b2 = np.zeros(10, np.float32)
        self.params = [self.w1, self.b1, self.w2, self.b2]

    def loss_and_grads(self, x, y):
        h = np.maximum(x @ self.w1 + self.b1, 0)
        logits = h @ self.w2 + self.b2
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
        d = p
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        dh = (d @ self.w2.T) * (h > 0)
        grads = [x.T @ dh, dh.sum(0), h.T @ d, d.sum(0)]
        return loss, [g.astype(np.float32, copy=False) for g in grads]

    def accuracy(self, x, y):
        return float((np.argmax(np.maximum(x @ self.w1 + self.b1, 0) @ self.w2 + self.b2, 1) == y).mean())


def make_optimizer(name, params, lr):
    if name == "sgdm":
        return adamcore.SGD(params, lr=0.1, momentum=0.9)
    if name == "adam":
        return adamcore.Adam(params, lr=lr)
    if name == "amsgrad":
        return adamcore.Adam(params, lr=lr, amsgrad=True)
    if name == "adafix":
        return adamcore.AdaFix(params, lr=lr)
    raise ValueError(name)


def effective_lr_percentiles(opt, lr, beta2=0.999, eps=1e-8):
    """The median and 99th percentile of Adam's effective learning rate lr / (sqrt(v / (1 - beta2^t)) + eps) over
    the weights that train: those whose second moment is not zero. The digits' border pixels are always 0, so their
    first-layer weights never get a gradient and sit at lr / eps; a maximum over all weights shows only them."""
    t = opt.step_count
    values = []
    for slots in opt.state.values():
        v = slots.get("max_exp_avg_sq", slots["exp_avg_sq"])
        v = v[v > 0].astype(np.float64)
        values.append(lr / (np.sqrt(v / (1 - beta2 ** t)) + eps))
    values = np.concatenate(values)
    return (np.percentile(values, 50), np.percentile(values, 99)) if values.size else (np.nan, np.nan)


def train(name, seed, epochs, batch, hidden, progress, lr):
    x, y, xt, yt = load(seed)
    rng = np.random.default_rng(seed)
    model = MLP(hidden, rng)
    opt = make_optimizer(name, model.params, lr)
    adaptive = name != "sgdm"
    if adaptive:
        opt.stats = STATS_EVERY   # measured inside the step, on every STATS_EVERY-th step
    history = {"train_loss": [], "test_accuracy": [], "lipschitz": [], "frozen": 0, "elr_p50": [], "elr_p99": [],
               "step_ratio": []}
    step_time, steps = 0.0, 0
    # disable=None: bars on a terminal, none in logs (tqdm checks whether stderr is a TTY)
    bar = tqdm(range(epochs), desc=f"{LABELS[name]:13s} seed {seed}", leave=False, disable=None if progress else True,
               ncols=90)
    for epoch in bar:
        if name == "sgdm" and epoch in (epochs // 2, (3 * epochs) // 4):
            opt.param_groups[0]["lr"] *= 0.1  # the paper's step decay
        order = rng.permutation(len(y))
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            _, grads = model.loss_and_grads(x[idx], y[idx])
            t0 = time.perf_counter()
            if name == "adafix":
                spent = [0.0]

                def grad_fn():  # AdaFix's g': the same minibatch at the new weights (not optimizer time)
                    start = time.perf_counter()
                    new = model.loss_and_grads(x[idx], y[idx])[1]
                    spent[0] += time.perf_counter() - start
                    return new
                opt.step(grads, grad_fn=grad_fn)
                step_time -= spent[0]
                history["frozen"] += not opt.v_updated
            else:
                opt.step(grads)
            step_time += time.perf_counter() - t0
            steps += 1
        loss, _ = model.loss_and_grads(x, y)
        history["train_loss"].append(loss)
        history["test_accuracy"].append(model.accuracy(xt, yt))
        history["lipschitz"].append(opt.lipschitz if name == "adafix" else np.nan)
        figures = opt.last_stats if adaptive else None
        p50, p99 = effective_lr_percentiles(opt, lr) if adaptive else (np.nan, np.nan)
        history["elr_p50"].append(p50)
        history["elr_p99"].append(p99)
        history["step_ratio"].append(figures.step_to_bound if figures else np.nan)
        bar.set_postfix(loss=f"{loss:.4f}", acc=f"{history['test_accuracy'][-1]:.3f}")
    history["us_per_step"] = 1e6 * step_time / steps
    history["steps"] = steps
    return history


STYLES = {"sgdm": ("-", "o"), "adam": ("-", None), "amsgrad": ("--", "^"), "adafix": (":", "s")}


def plot(results, epochs, path):
    """Loss and accuracy (mean ± std over seeds), and each optimizer's loss relative to Adam's: Adam, AMSGrad and
    AdaFix differ by little here (AdaFix is Adam until its gate closes), which the ratio shows and the loss
    curves cannot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.5))
    x = np.arange(1, epochs + 1)
    every = max(1, epochs // 10)
    adam = np.array([r["train_loss"] for r in results["adam"]]).mean(0) if "adam" in results else None
    low = 1.0
    for name, runs in results.items():
        style, marker = STYLES[name]
        for ax, key in ((a, "train_loss"), (b, "test_accuracy")):
            values = np.array([r[key] for r in runs])
            mean, std = values.mean(0), values.std(0)
            line = ax.plot(x, mean, linestyle=style, marker=marker, markevery=every, label=LABELS[name])[0]
            ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=line.get_color())
            if key == "test_accuracy":
                low = min(low, (mean - std)[epochs // 5:].min())
        if adam is not None:
            ratio = np.array([r["train_loss"] for r in runs]).mean(0) / adam
            c.plot(x, ratio, linestyle=style, marker=marker, markevery=every, label=LABELS[name])
    a.set_yscale("log")
    a.set_title("training loss (mean ± std over seeds)")
    b.set_title("test accuracy (mean ± std over seeds)")
    b.set_ylim(max(0.0, low - 0.01), 1.0)
    c.set_yscale("log")
    c.set_title("training loss / Adam's (means over seeds)")
    for ax in (a, b, c):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("MLP on scikit-learn digits, optimizers from adamcore")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


STATS_EVERY = 10


def plot_diagnostics(results, epochs, path):
    """The effective learning rate over the weights that train (median over seeds of each run's median and 99th
    percentile) and the largest step against seed 000's bound (max over seeds), as the console prints them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(1, epochs + 1)
    for name, runs in results.items():
        if name == "sgdm":
            continue
        style, marker = STYLES[name]
        line = a.plot(x, np.median([r["elr_p50"] for r in runs], 0), linestyle=style, label=f"{LABELS[name]} median")[0]
        a.plot(x, np.median([r["elr_p99"] for r in runs], 0), linestyle=style, marker=marker, markevery=max(1, epochs // 10),
               color=line.get_color(), alpha=0.6, label=f"{LABELS[name]} 99th percentile")
        b.plot(x, np.max([r["step_ratio"] for r in runs], 0), linestyle=style, marker=marker,
               markevery=max(1, epochs // 10), label=LABELS[name])
    a.set_yscale("log")
    a.set_ylabel("effective lr (the optimizer's lr is 1e-3 unless --lr)")
    a.set_title("effective lr = lr/(sqrt(v_hat)+eps) over the weights that train\n(median over seeds)")
    b.axhline(1.0, color="k", linestyle=":", label="Proposition 1 bound (7.27 lr)")
    b.set_title("largest |step| / (lr x bound), max over seeds")
    b.set_yscale("log")
    for ax in (a, b):
        ax.set_xlabel("epoch (last measured step)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"adamcore step statistics (opt.stats = {STATS_EVERY}) and the optimizer state")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description="adamcore demo: the AdaFix paper's comparison on sklearn digits")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS), help="comma-separated: " + ", ".join(OPTIMIZERS))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5, help="runs per optimizer (the paper uses 5)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3, help="lr of Adam, AMSGrad and AdaFix (the paper: 1e-3)")
    parser.add_argument("--out", default="build/demo", help="folder for the PNG")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    for n in names:
        if n not in OPTIMIZERS:
            parser.error(f"unknown optimizer {n!r}; choose from {', '.join(OPTIMIZERS)}")

    print(f"adamcore {adamcore.__version__}: MLP 64-{args.hidden}-10 on sklearn digits (1437 train / 360 test), "
          f"batch {args.batch}, {args.epochs} epochs, {args.seeds} seeds per optimizer; BLAS threads: "
          + ", ".join(f"{k}={v}" for k, v in BLAS_THREADS.items()))
    for advisory in adamcore.advise("adam", lr=args.lr):
        print(f"  adamcore.advise('adam', lr={args.lr}): {advisory}")
    started = time.perf_counter()
    results = {name: [train(name, seed, args.epochs, args.batch, args.hidden, not args.no_progress, args.lr)
                      for seed in range(args.seeds)] for name in names}

    print(f"\nFinal figures, mean ± std over {args.seeds} seeds; us/step: the optimizer step alone (adamcore), mean "
          "over every step; the paper's MNIST accuracy for comparison")
    print(f"{'optimizer':14s} {'final train loss':>20s} {'test accuracy (%)':>20s} {'us/step':>9s}   "
          f"paper, MNIST (%)")
    for name, runs in results.items():
        loss = np.array([r["train_loss"][-1] for r in runs])
        acc = 100 * np.array([r["test_accuracy"][-1] for r in runs])
        us = np.mean([r["us_per_step"] for r in runs])
        print(f"{LABELS[name]:14s} {loss.mean():11.5f} ± {loss.std():.5f} {acc.mean():11.2f} ± {acc.std():5.2f} "
              f"{us:9.1f}   {PAPER_MNIST[name]}")
    if "adafix" in results:
        runs = results["adafix"]
        frozen = sum(r["frozen"] for r in runs)
        total = sum(r["steps"] for r in runs)
        lipschitz = np.mean([r["lipschitz"][-1] for r in runs])
        print(f"\nAdaFix: final L = {lipschitz:.2f} (mean over seeds), so v is frozen when max|g| < L*lr = "
              f"{lipschitz * args.lr:.2g}; v was held fixed on {frozen} of {total} steps ({100 * frozen / total:.1f}%)"
              + (" and AdaFix ran exactly as Adam." if frozen == 0 else "."))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits_curves.png")
    plot(results, args.epochs, path)
    adaptive = [n for n in results if n != "sgdm"]
    if adaptive:
        diagnostics = os.path.join(args.out, "digits_diagnostics.png")
        plot_diagnostics(results, args.epochs, diagnostics)
        print("\nLargest step against Proposition 1's bound of 7.27 lr (max over seeds and epochs; above 1 the bound "
              "is exceeded), and the effective lr over the weights that train at the end (median over seeds of the "
              "median and 99th percentile; lr alone would be 1x):")
        for name in adaptive:
            ratio = np.nanmax([r["step_ratio"] for r in results[name]])
            p50 = np.median([r["elr_p50"][-1] for r in results[name]])
            p99 = np.median([r["elr_p99"][-1] for r in results[name]])
            print(f"  {LABELS[name]:9s} largest step {ratio:.2f}x the bound; effective lr median {p50 / args.lr:.3g}x lr, "
                  f"99th percentile {p99 / args.lr:.3g}x lr")
        print(f"step statistics: {diagnostics}")
    print(f"curves: {path}   ({time.perf_counter() - started:.1f} s in all; us/step is the optimizer step only, "
          f"statistics measured on every {STATS_EVERY}th step of the adaptive ones)")
    return results


if __name__ == "__main__":
    main()
