"""The research seeds' claims, measured with adamcore. Each subcommand prints the paper's figure next to the measured
one and writes a PNG.

    PYTHONPATH=build/python python3 examples/seeds/seeds.py all --out build/seeds
    ... seeds.py prop1 | prop2 | prop3 | rmsprop-cycle | adam-regimes | adafix-figure1 | saddle | valleys |
                 beta2-transition

All runs use float64 and adamcore's optimizers exactly as a user would (adamcore.Adam, AMSGrad, AdaFix, RMSprop).
"""
import argparse
import os
import warnings

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

    paths, effective, v_norms = {}, {}, {}
    for name in ("Adam", "AMSGrad", "AdaFix"):
        x = np.array([1.0, 0.3])
        if name == "AdaFix":
            opt = adamcore.AdaFix([x], lr=0.5, betas=(B1, B2))
        else:
            opt = adamcore.Adam([x], lr=0.5, betas=(B1, B2), amsgrad=name == "AMSGrad")
        distance, lr_eff, v_norm = [], [], []
        state = opt.state[0]
        for t in range(1, steps + 1):
            g = grad(x)
            if name == "AdaFix":
                opt.step([g], grad_fn=lambda: [grad(x)])  # full gradient: the "same minibatch" at the new point
            else:
                opt.step([g])
            distance.append(np.linalg.norm(x))
            # Seed 001's Figure 2 quantities, read from the optimizer's state: ||v|| and lr / (sqrt(v_hat) + eps).
            v = state["max_exp_avg_sq"] if name == "AMSGrad" else state["exp_avg_sq"]
            v_norm.append(float(np.linalg.norm(state["exp_avg_sq"])))
            lr_eff.append(float(np.mean(0.5 / (np.sqrt(v / (1 - B2 ** t)) + 1e-8))))
        paths[name], effective[name], v_norms[name] = distance, lr_eff, v_norm
        closest = int(np.argmin(distance))
        print(f"adafix-figure1: {name:8s} closest {distance[closest]:.2e} at step {closest + 1}, final distance "
              f"{distance[-1]:.3e}, max after the closest approach {max(distance[closest:]):.3e}")
    adam_recedes = max(paths["Adam"][int(np.argmin(paths["Adam"])):]) > 10 * min(paths["Adam"])
    print(f"adafix-figure1: Adam recedes after approaching (paper's Figure 1): "
          f"{'reproduces' if adam_recedes else 'does NOT reproduce'}")
    for name in paths:
        print(f"adafix-figure1: {name:8s} effective lr/(sqrt(v_hat)+eps) at steps 100 / 1000 / {steps}: "
              f"{effective[name][99]:.3g} / {effective[name][999]:.3g} / {effective[name][-1]:.3g}; "
              f"||v|| at the end {v_norms[name][-1]:.3g}")
    grows = effective["Adam"][-1] > 100 * effective["AdaFix"][-1]
    print(f"adafix-figure1: Adam's effective learning rate explodes while AdaFix's stays bounded (paper's Figure 2): "
          f"{'reproduces' if grows else 'does NOT reproduce'}")
    x_axis = np.arange(1, steps + 1)
    _plot(out, "adafix_figure1.png", "Seed 001, Figure 1: distance to the optimum, f = 1 - cos(x1^2 + x2^2), lr 0.5",
          [(x_axis, d, name) for name, d in paths.items()], xlabel="step")
    _plot(out, "adafix_figure2.png", "Seed 001, Figure 2 quantities on that problem: effective learning rate",
          [(x_axis, e, name) for name, e in effective.items()], xlabel="step")
    return {"distance": paths, "effective_lr": effective, "v_norm": v_norms}


def _optimizers(x, lr):
    return {"SGD": adamcore.SGD([x], lr=lr), "AdaGrad": adamcore.Adagrad([x], lr=lr),
            "RMSprop": adamcore.RMSprop([x], lr=lr), "Adam": adamcore.Adam([x], lr=lr)}


def saddle(out, lr=0.01, steps=20000):
    """Seed 000, Figure 2a: the saddle f = (-x^2 + y^2)/2 (Hessian diag(-1, 1)) from (1e-6, 1); steps until |x| >= 1.
    The paper: Adam escapes first ("the most favorable"), AdaGrad and RMSprop behave alike."""
    times, paths = {}, {}
    for name in ("SGD", "AdaGrad", "RMSprop", "Adam"):
        x = np.array([1e-6, 1.0])
        opt = _optimizers(x, lr)[name]
        path, escaped = [x.copy()], None
        for t in range(1, steps + 1):
            opt.step([np.array([-x[0], x[1]])])
            path.append(x.copy())
            if abs(x[0]) >= 1:
                escaped = t
                break
        times[name], paths[name] = escaped, np.array(path)
        print(f"saddle: {name:8s} escapes (|x| >= 1) after {escaped if escaped else f'> {steps}'} steps (lr {lr})")
    order = sorted((t if t else np.inf, n) for n, t in times.items())
    print(f"saddle: Adam escapes first (paper): {'reproduces' if order[0][1] == 'Adam' else 'does NOT reproduce'}")
    _plot(out, "saddle.png", f"Seed 000, saddle diag(-1, 1): |x| over time, lr {lr}",
          [(np.arange(len(p)), np.abs(p[:, 0]) + 1e-12, n) for n, p in paths.items()], xlabel="step")
    return times


def valleys(out, lr=0.01, steps=20000):
    """Seed 000, Figures 3-5: the smooth valley x^2 + 1e-3 y^2 and the sharp valley |x| + 1e-4 |y| from (1, 1):
    steps until |w| < 1e-3, and the late oscillation of x. The paper (smooth valley): Adam within 1e-3 after 3113
    steps, RMSprop after 1086, and Adam does not converge (a stable periodic oscillation, Figure 5)."""
    results = {}
    for valley, grad in (("smooth", lambda w: np.array([2 * w[0], 2e-3 * w[1]])),
                         ("sharp", lambda w: np.array([np.sign(w[0]), 1e-4 * np.sign(w[1])]))):
        series = []
        for name in ("SGD", "AdaGrad", "RMSprop", "Adam"):
            w = np.array([1.0, 1.0])
            opt = _optimizers(w, lr)[name]
            xs, reached = [], None
            for t in range(1, steps + 1):
                opt.step([grad(w)])
                xs.append(w[0])
                if reached is None and np.linalg.norm(w) < 1e-3:
                    reached = t
            late = float(np.max(np.abs(xs[-steps // 4:])))  # a quarter of the run: catches rare spikes too
            results[(valley, name)] = (reached, late)
            print(f"valleys: {valley:6s} {name:8s} |w| < 1e-3 after {reached if reached else f'> {steps}'} steps; "
                  f"max |x| over the last quarter {late:.2e}")
            series.append((np.arange(1, steps + 1), np.abs(xs) + 1e-12, name))
        _plot(out, f"valley_{valley}.png", f"Seed 000, {valley} valley: |x| (w_1) over time, lr {lr}", series,
              xlabel="step")
    adam_late, rms_late = results[("smooth", "Adam")][1], results[("smooth", "RMSprop")][1]
    print(f"valleys: smooth valley, Adam does not converge (paper): {'reproduces' if adam_late > 1e-3 else 'does NOT reproduce'}"
          f" (max |x| late {adam_late:.1e}); RMSprop converges (paper): "
          f"{'reproduces' if rms_late < 1e-6 else 'does NOT reproduce'} (max |x| late {rms_late:.1e})")
    return results


def beta2_transition(out, steps=30000, c=10.0):
    """Seed 002: whether Adam converges depends on beta2 (small beta2 diverges; large beta2 with beta1 < sqrt(beta2)
    converges). Problem (constructed, Reddi et al.'s online example): f_t(x) = C x when t = 1 mod 3, else -x, on
    [-1, 1] (projection after each step); the average gradient (C - 2)/3 > 0, so the optimum is x = -1."""
    grid = [0.001, 0.01, 0.03, 0.1, 0.3, 0.9, 0.999]
    finals = {}
    for beta1 in (0.0, 0.9):
        row = []
        for beta2 in grid:
            x = np.array([0.0])
            opt = adamcore.Adam([x], lr=0.01, betas=(beta1, beta2), eps=1e-12)
            tail = []
            for t in range(1, steps + 1):
                opt.step([np.array([c if t % 3 == 1 else -1.0])])
                np.clip(x, -1, 1, out=x)
                if t > steps - 3000:
                    tail.append(x[0])
            row.append(float(np.mean(tail)))
        finals[beta1] = row
        print(f"beta2-transition: beta1 = {beta1}: mean x over the last 3000 steps for beta2 = "
              + ", ".join(f"{b}: {v:+.3f}" for b, v in zip(grid, row)))
    small, large = finals[0.0][0], finals[0.9][-1]
    print(f"beta2-transition: small beta2 ends at the worst point (+1), large beta2 with beta1 < sqrt(beta2) at the "
          f"optimum (-1): {'reproduces' if small > 0.9 and large < -0.9 else 'does NOT reproduce'}")
    _plot(out, "beta2_transition.png", "Seed 002: where Adam ends on Reddi et al.'s problem (optimum -1)",
          [(np.array(grid), np.array(v), f"beta1 = {b}") for b, v in finals.items()], xlabel="beta2", logy=False,
          logx=True)
    return {"grid": grid, "finals": finals}


def adam_regimes(out, lr=0.01, steps=20000):
    """Seed 003: Adam on x^2/2 behaves by a = (1 - beta2)/lr and b = (1 - beta1)/lr: large spikes when b >> a,
    small oscillations when a ~ b, divergence risk when a >> b."""
    regimes = {"b >> a (spikes)": (0.9, 0.999), "a ~ b (oscillation)": (0.99, 0.99), "a >> b (risk)": (0.999, 0.9)}
    results, series, elr_series, ratio_series = {}, [], [], []
    for label, (beta1, beta2) in regimes.items():
        regime = [a for a in adamcore.advise("adam", lr=lr, betas=(beta1, beta2), eps=1e-12)
                  if a.code.endswith("_regime")][0]
        print(f"adam-regimes: adamcore.advise says {regime.code} (b/a = {regime.value:.3g}, {regime.severity})")
        x = np.array([1.0])
        opt = adamcore.Adam([x], lr=lr, betas=(beta1, beta2), eps=1e-12)
        opt.stats = 1          # the effective lr and the step-to-bound ratio, measured inside each step
        xs, elr, ratio = [], [], []
        for _ in range(steps):
            opt.step([x.copy()])
            xs.append(abs(x[0]))
            figures = opt.last_stats
            elr.append(figures.max_effective_lr)
            ratio.append(figures.step_to_bound)
        late = np.array(xs[steps // 2:])
        spikes = int(np.sum((late[1:] > 10 * np.median(late)) & (late[:-1] <= 10 * np.median(late))))
        results[label] = {"a": (1 - beta2) / lr, "b": (1 - beta1) / lr, "median": float(np.median(late)),
                          "max": float(np.max(late)), "spikes": spikes, "advice": regime.code,
                          "max_step_to_bound": float(np.nanmax(ratio)) if not np.isnan(ratio).all() else None,
                          "max_effective_lr": float(np.max(elr))}
        r = results[label]
        print(f"adam-regimes: {label:21s} a = {r['a']:5.1f}, b = {r['b']:5.1f}: late |x| median {r['median']:.2e}, "
              f"max {r['max']:.2e}, spikes (10x the median) {spikes}")
        bound = "no finite bound (beta1 >= sqrt(beta2))" if np.isnan(ratio).all() else f"{np.nanmax(ratio):.3f}"
        print(f"adam-regimes: {label:21s} largest step / Proposition 1 bound {bound}, effective lr up to "
              f"{np.max(elr):.3g}")
        series.append((np.arange(1, steps + 1), np.array(xs) + 1e-12, f"{label}: b1={beta1}, b2={beta2}"))
        elr_series.append((np.arange(1, steps + 1), np.array(elr), f"{label}"))
        if not np.isnan(ratio).all():
            ratio_series.append((np.arange(1, steps + 1), np.array(ratio) + 1e-12, f"{label}"))
    _plot(out, "adam_regimes.png", f"Seed 003: Adam on x^2/2, lr {lr}, |x| over time", series, xlabel="step")
    _plot(out, "adam_regimes_effective_lr.png", f"Seed 003: largest effective lr lr/(sqrt(v_hat)+eps) per step "
          f"(opt.last_stats)", elr_series, xlabel="step")
    _plot(out, "adam_regimes_step_ratio.png", "Seed 003: |step| / (lr x Proposition 1 bound) per step "
          "(opt.last_stats)", ratio_series, hline=(1.0, "the bound"), xlabel="step")
    return results


def _plot(out, name, title, series, hline=None, hline2=None, xlabel="", logy=True, logx=False):
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
    if logx:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    fig.savefig(os.path.join(out, name), dpi=100)
    plt.close(fig)


COMMANDS = {"prop1": prop1, "prop2": prop2, "prop3": prop3, "rmsprop-cycle": rmsprop_cycle,
            "adafix-figure1": adafix_figure1, "saddle": saddle, "valleys": valleys, "beta2-transition": beta2_transition,
            "adam-regimes": adam_regimes}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS) + ["all"])
    parser.add_argument("--out", default="build/seeds", help="folder for the PNGs")
    args = parser.parse_args(argv)
    # Some experiments use settings the advice warns about on purpose; adam-regimes prints the advice itself.
    warnings.simplefilter("ignore", adamcore.AdamCoreAdvisory)
    names = sorted(COMMANDS) if args.command == "all" else [args.command]
    return {name: COMMANDS[name](args.out) for name in names}


if __name__ == "__main__":
    main()
