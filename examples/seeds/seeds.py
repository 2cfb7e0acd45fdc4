"""The research seeds' claims, measured with adamcore. Each subcommand prints the paper's figure next to the measured
one and writes a PNG.

    PYTHONPATH=build/python python3 examples/seeds/seeds.py all --out build/seeds
    ... seeds.py prop1 | prop2 | prop3 | rmsprop-cycle | adafix-figure1

All runs use float64 and adamcore's optimizers exactly as a user would (adamcore.Adam, AMSGrad, AdaFix, RMSprop).
"""
import argparse
import os

import numpy as np

import adamcore

B1, B2 = 0.9, 0.999


def prop1_bound(b1=B1, b2=B2):
    """Seed 000, Proposition 1: |w_{t+1} - w_t| <= lr * sqrt(b2)(1 - b1) / sqrt((1 - b2)(b2 - b1^2))."""
    return np.sqrt(b2) * (1 - b1) / np.sqrt((1 - b2) * (b2 - b1 * b1))


def prop2_bound(b1=B1, b2=B2):
    """Seed 000, Proposition 2: distance crossed on a flat <= lr * b2(1 - b1) / ((sqrt(b2) - b1) sqrt((1-b2)(b2-b1^2)))."""
    return b2 * (1 - b1) / ((np.sqrt(b2) - b1) * np.sqrt((1 - b2) * (b2 - b1 * b1)))


def _adam(x, lr, **kwargs):
    # eps = 1e-300 instead of 0: zero gradients give 0/(0 + eps) = 0, not 0/0; negligible against |g| >= 1e-3.
    return adamcore.Adam([x], lr=lr, betas=(B1, B2), eps=1e-300, **kwargs)


def extremal_sequence(length):
    """Where Cauchy-Schwarz is tight in Proposition 1: g_{t-i} proportional to (b1/b2)^i, i.e. growing by b2/b1."""
    return (B2 / B1) ** np.arange(length)


def prop1(out, lr=1e-3):
    """Adam's per-step movement never exceeds ~7.27 lr; the extremal sequence nearly attains it."""
    bound = prop1_bound()
    # (a) 20000 independent random gradient sequences (one element each), 3000 steps: the largest ratio seen.
    rng = np.random.default_rng(0)
    x = np.zeros(20000)
    opt = _adam(x, lr)
    worst, history = 0.0, []
    for t in range(3000):
        before = x.copy()
        scale = rng.choice([1e-3, 1.0, 1e3], size=x.size) if t % 100 == 0 else 1.0
        opt.step([rng.standard_normal(x.size) * scale * (1 + 0.01 * t)])
        worst = max(worst, np.max(np.abs(x - before)) / lr)
        history.append(worst)
    # (b) the extremal sequence after a long zero prefix (the bias correction factor -> 1), last step measured.
    y = np.zeros(1)
    opt = _adam(y, lr)
    for _ in range(8000):
        opt.step([np.zeros(1)])
    ratios = []
    for g in extremal_sequence(400):
        before = y.copy()
        opt.step([np.array([g])])
        ratios.append(abs(y[0] - before[0]) / lr)
    print(f"prop1: bound sqrt(b2)(1-b1)/sqrt((1-b2)(b2-b1^2)) = {bound:.4f} (paper: ~7.3)")
    print(f"prop1: largest |dw|/lr over 20000 random sequences x 3000 steps = {worst:.4f} "
          f"({worst / bound:.3f} of the bound)")
    print(f"prop1: extremal sequence, last step |dw|/lr = {ratios[-1]:.4f} ({ratios[-1] / bound:.5f} of the bound)")
    _plot(out, "prop1.png", "Seed 000, Proposition 1: Adam's step / lr",
          [(np.arange(1, len(ratios) + 1), ratios, "extremal gradient sequence"),
           (np.arange(1, len(history) + 1), history, "random sequences: running max over 20000")],
          hline=(bound, f"bound {bound:.3f}"), xlabel="step")
    return {"bound": bound, "random_max": worst, "extremal": ratios[-1]}


def prop2(out, lr=1e-3):
    """Once the gradient vanishes (a flat), Adam travels at most ~73 lr further."""
    bound = prop2_bound()
    y = np.zeros(1)
    opt = _adam(y, lr)
    for _ in range(8000):
        opt.step([np.zeros(1)])
    sequence = extremal_sequence(400)
    for g in sequence[:-1]:
        opt.step([np.array([g])])
    start = y[0]
    opt.step([np.array([sequence[-1]])])  # the last gradient seen before the flat (the paper's g_0, sigma_0)
    travelled = [abs(y[0] - start) / lr]
    for _ in range(3000):
        opt.step([np.zeros(1)])
        travelled.append(abs(y[0] - start) / lr)
    print(f"prop2: bound on the distance crossed on a flat = {bound:.3f} lr (paper: ~73)")
    print(f"prop2: measured after the extremal sequence = {travelled[-1]:.3f} lr ({travelled[-1] / bound:.4f} of the bound)")
    _plot(out, "prop2.png", "Seed 000, Proposition 2: distance travelled on a flat / lr",
          [(np.arange(len(travelled)), travelled, "Adam after the extremal sequence")],
          hline=(bound, f"bound {bound:.2f}"), xlabel="steps on the flat")
    return {"bound": bound, "measured": travelled[-1]}


def prop3(out, lr=1e-3):
    """The same gradient magnitudes give a larger step when the large ones are recent."""
    magnitudes = np.linspace(0.1, 1.0, 20)
    results = {}
    for name, order in (("increasing (recent mass)", magnitudes), ("decreasing (early mass)", magnitudes[::-1]),
                        ("shuffled", np.random.default_rng(1).permutation(magnitudes))):
        y = np.zeros(1)
        opt = _adam(y, lr)
        for _ in range(8000):
            opt.step([np.zeros(1)])
        for g in order[:-1]:
            opt.step([np.array([g])])
        before = y[0]
        opt.step([np.array([order[-1]])])
        results[name] = abs(y[0] - before) / lr
    for name, ratio in results.items():
        print(f"prop3: last step after {name:26s} gradients: {ratio:.4f} lr")
    ordered = results["increasing (recent mass)"] > results["shuffled"] > results["decreasing (early mass)"]
    print(f"prop3: recent mass gives the largest step: {'reproduces' if ordered else 'does NOT reproduce'}")
    return results


def rmsprop_cycle(out, lr=0.1):
    """Seed 003: on f = x^2/2, RMSprop (eps = 0) settles into a 2-cycle x = +-lr/2."""
    x = np.array([1.0])
    opt = adamcore.RMSprop([x], lr=lr, alpha=0.99, eps=0.0)
    path = []
    for _ in range(4000):
        opt.step([x.copy()])  # the gradient of x^2/2 is x
        path.append(x[0])
    tail = np.array(path[-200:])
    amplitude, alternates = np.mean(np.abs(tail)), bool(np.all(np.sign(tail[1:]) == -np.sign(tail[:-1])))
    print(f"rmsprop-cycle: paper: a 2-cycle at +-lr/2 = +-{lr / 2}; measured: mean |x| over the last 200 steps = "
          f"{amplitude:.6f}, signs alternate every step: {alternates}")
    _plot(out, "rmsprop_cycle.png", f"Seed 003: RMSprop on x^2/2, lr {lr}: iterates",
          [(np.arange(len(path)), path, "x_t")], hline=(lr / 2, "+lr/2"), hline2=(-lr / 2, "-lr/2"), xlabel="step",
          logy=False)
    return {"amplitude": amplitude, "alternates": alternates}


def adafix_figure1(out, steps=20000):
    """Seed 001, Figure 1: f = 1 - cos(x1^2 + x2^2) from (1.0, 0.3), lr 0.5, betas (0.9, 0.999): Adam first
    approaches the optimum, then recedes as lr/sqrt(v) grows; AMSGrad and AdaFix are meant to stay."""
    def grad(x):
        return 2 * np.sin(x @ x) * x

    paths = {}
    for name in ("Adam", "AMSGrad", "AdaFix"):
        x = np.array([1.0, 0.3])
        if name == "AdaFix":
            opt = adamcore.AdaFix([x], lr=0.5, betas=(B1, B2))
        else:
            opt = adamcore.Adam([x], lr=0.5, betas=(B1, B2), amsgrad=name == "AMSGrad")
        distance = []
        for _ in range(steps):
            g = grad(x)
            if name == "AdaFix":
                opt.step([g], grad_fn=lambda: [grad(x)])  # full gradient: the "same minibatch" at the new point
            else:
                opt.step([g])
            distance.append(np.linalg.norm(x))
        paths[name] = distance
        closest = int(np.argmin(distance))
        print(f"adafix-figure1: {name:8s} closest {distance[closest]:.2e} at step {closest + 1}, final distance "
              f"{distance[-1]:.3e}, max after the closest approach {max(distance[closest:]):.3e}")
    adam_recedes = max(paths["Adam"][int(np.argmin(paths["Adam"])):]) > 10 * min(paths["Adam"])
    print(f"adafix-figure1: Adam recedes after approaching (paper's Figure 1): "
          f"{'reproduces' if adam_recedes else 'does NOT reproduce'}")
    _plot(out, "adafix_figure1.png", "Seed 001, Figure 1: distance to the optimum, f = 1 - cos(x1^2 + x2^2), lr 0.5",
          [(np.arange(1, steps + 1), d, name) for name, d in paths.items()], xlabel="step")
    return paths


def _plot(out, name, title, series, hline=None, hline2=None, xlabel="", logy=True):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for x, y, label in series:
        ax.plot(x, y, label=label)
    for line, style in ((hline, "--"), (hline2, ":")):
        if line:
            ax.axhline(line[0], color="k", linestyle=style, label=line[1])
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    fig.savefig(os.path.join(out, name), dpi=100)
    plt.close(fig)


COMMANDS = {"prop1": prop1, "prop2": prop2, "prop3": prop3, "rmsprop-cycle": rmsprop_cycle,
            "adafix-figure1": adafix_figure1}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS) + ["all"])
    parser.add_argument("--out", default="build/seeds", help="folder for the PNGs")
    args = parser.parse_args(argv)
    names = sorted(COMMANDS) if args.command == "all" else [args.command]
    return {name: COMMANDS[name](args.out) for name in names}


if __name__ == "__main__":
    main()
