"""Plain float64 numpy references, written from torch.optim's documented rules (optax for eps_root and its AMSGrad
order, seed 001's Algorithm 1 for AdaFix), in textbook form. They share no code with adamcore."""
import numpy as np


class RefAdam:
    def __init__(self, p, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                 decoupled=False, eps_root=0.0, amsgrad_optax_order=False, bias_correction=True, **_):
        self.p = np.array(p, dtype=np.float64)
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        self.amsgrad, self.maximize, self.decoupled, self.eps_root = amsgrad, maximize, decoupled, eps_root
        self.optax, self.bias = amsgrad_optax_order, bias_correction
        self.m = np.zeros_like(self.p); self.v = np.zeros_like(self.p); self.vmax = np.zeros_like(self.p)

    def step(self, g, t, update_v=True):
        g = -g if self.maximize else g.astype(np.float64)
        if self.wd and not self.decoupled:
            g = g + self.wd * self.p
        if self.decoupled:
            self.p = self.p * (1 - self.lr * self.wd)
        self.m = self.b1 * self.m + (1 - self.b1) * g
        if update_v:
            self.v = self.b2 * self.v + (1 - self.b2) * g * g
        bc1 = 1 - self.b1 ** t if self.bias else 1.0
        bc2 = 1 - self.b2 ** t if self.bias else 1.0
        if self.amsgrad and self.optax:
            self.vmax = np.maximum(self.vmax, self.v / bc2); vhat = self.vmax
        elif self.amsgrad:
            self.vmax = np.maximum(self.vmax, self.v); vhat = self.vmax / bc2
        else:
            vhat = self.v / bc2
        self.p = self.p - self.lr * (self.m / bc1) / (np.sqrt(vhat + self.eps_root) + self.eps)

    def state(self):
        return {"exp_avg": self.m, "exp_avg_sq": self.v, **({"max_exp_avg_sq": self.vmax} if self.amsgrad else {})}


class RefSGD:
    def __init__(self, p, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, **_):
        self.p = np.array(p, dtype=np.float64)
        self.lr, self.mu, self.damp, self.wd, self.nesterov, self.maximize = lr, momentum, dampening, weight_decay, nesterov, maximize
        self.buf = np.zeros_like(self.p)

    def step(self, g, t):
        g = -g if self.maximize else g.astype(np.float64)
        if self.wd:
            g = g + self.wd * self.p
        if self.mu:
            self.buf = g.copy() if t == 1 else self.mu * self.buf + (1 - self.damp) * g
            g = g + self.mu * self.buf if self.nesterov else self.buf
        self.p = self.p - self.lr * g

    def state(self):
        return {"momentum_buffer": self.buf} if self.mu else {}


class RefRMSprop:
    def __init__(self, p, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False, **_):
        self.p = np.array(p, dtype=np.float64)
        self.lr, self.alpha, self.eps, self.wd, self.mu, self.centered, self.maximize = lr, alpha, eps, weight_decay, momentum, centered, maximize
        self.sq = np.zeros_like(self.p); self.gavg = np.zeros_like(self.p); self.buf = np.zeros_like(self.p)

    def step(self, g, t):
        g = -g if self.maximize else g.astype(np.float64)
        if self.wd:
            g = g + self.wd * self.p
        self.sq = self.alpha * self.sq + (1 - self.alpha) * g * g
        if self.centered:
            self.gavg = self.alpha * self.gavg + (1 - self.alpha) * g
            avg = np.sqrt(np.maximum(self.sq - self.gavg ** 2, 0)) + self.eps
        else:
            avg = np.sqrt(self.sq) + self.eps
        if self.mu > 0:
            self.buf = self.mu * self.buf + g / avg
            self.p = self.p - self.lr * self.buf
        else:
            self.p = self.p - self.lr * g / avg

    def state(self):
        s = {"square_avg": self.sq}
        if self.centered:
            s["grad_avg"] = self.gavg
        if self.mu > 0:
            s["momentum_buffer"] = self.buf
        return s


class RefAdagrad:
    def __init__(self, p, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False, **_):
        self.p = np.array(p, dtype=np.float64)
        self.lr, self.decay, self.wd, self.eps, self.maximize = lr, lr_decay, weight_decay, eps, maximize
        self.sum = np.full_like(self.p, initial_accumulator_value)

    def step(self, g, t):
        g = -g if self.maximize else g.astype(np.float64)
        if self.wd:
            g = g + self.wd * self.p
        self.sum = self.sum + g * g
        self.p = self.p - self.lr / (1 + (t - 1) * self.decay) * g / (np.sqrt(self.sum) + self.eps)

    def state(self):
        return {"sum": self.sum}


def bound(steps, dtype):
    """Each step adds at most a few roundings (epsilon times the buffer's scale) and nothing here amplifies earlier
    errors beyond a constant, so after N steps |x - ref| <= 4 N eps (|ref| + max|ref|) (the Swift suite's bound)."""
    return 4 * steps * np.finfo(dtype).eps


def assert_close(actual, expected, steps, dtype, label):
    actual = np.asarray(actual, dtype=np.float64)
    tolerance = bound(steps, dtype) * (np.abs(expected) + np.max(np.abs(expected), initial=0))
    excess = np.abs(actual - expected) - tolerance
    worst = int(np.argmax(excess)) if excess.size else 0
    assert excess.size == 0 or excess[worst] <= 0, (
        f"{label}: element {worst}: {actual.flat[worst]!r} vs reference {expected.flat[worst]!r} "
        f"(tolerance {tolerance.flat[worst]:.3g})")


class Problem:
    """Seeded gradients with scales from 1e-4 to 1 across elements and a decaying envelope."""

    def __init__(self, sizes, seed):
        rng = np.random.default_rng(seed)
        self.sizes, self.seed = sizes, seed
        self.initial = [rng.uniform(-1, 1, n) for n in sizes]
        self.scales = [10.0 ** (-(np.arange(n) % 5)) for n in sizes]

    def grads(self, t, dtype):
        rng = np.random.default_rng((self.seed, t))
        envelope = 1 / (1 + t / 200)
        return [(envelope * s * rng.uniform(-1, 1, len(s))).astype(dtype) for s in self.scales]

    def smooth_grads(self, t, dtype):
        """Gradients that drift with t (a sinusoid per element), same envelope: consecutive gradients are related,
        as a real loss's are, so the next-gradient Lipschitz estimate is finite and moderate."""
        envelope = 1 / (1 + t / 200)
        return [(envelope * s * np.sin(0.5 * t + 2 * np.pi * x)).astype(dtype) for s, x in zip(self.scales, self.initial)]
