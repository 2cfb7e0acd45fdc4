"""Python-side benchmark: one fp32 Adam step through adamcore, numpy, torch.optim.Adam (foreach and fused) and
DeepSpeed's CPUAdam, interleaved round by round on the same machine, 1 and 2 threads. Contenders that are not
installed are reported as missing. Prints key=value lines for bench/report.py.

    PYTHONPATH=build/python python3 bench/bench_py.py [--quick]
"""
import argparse
import ctypes
import os
import sys
import time

import numpy as np

import adamcore

try:
    import torch
except Exception:  # any import failure means: not available here
    torch = None
try:
    from deepspeed.ops.adam import DeepSpeedCPUAdam
except Exception:
    DeepSpeedCPUAdam = None


def set_threads(n):
    adamcore.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:  # DeepSpeed's kernel uses the system OpenMP runtime
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(n)
    except OSError:
        pass


class NumpyAdam:
    """Adam written with numpy in-place operations: what a numpy training loop does without a library."""

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps, self.t = params, lr, b1, b2, eps, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.tmp = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        bc1, bc2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, g, m, v, tmp in zip(self.params, grads, self.m, self.v, self.tmp):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - self.b2
            v += tmp
            np.divide(v, bc2, out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= self.lr / bc1
            p -= tmp


def contenders(tensors, per):
    """(name, step function) for every available contender over `tensors` tensors of `per` elements."""
    rng = np.random.default_rng(0)
    out = []

    params = [np.ones(per, np.float32) for _ in range(tensors)]
    grads = [rng.standard_normal(per).astype(np.float32) for _ in range(tensors)]
    opt = adamcore.Adam(params, lr=1e-3)
    out.append(("adamcore_py", lambda: opt.step(grads)))

    if tensors == 1:
        cfg = adamcore.configs.adam(lr=1e-3)
        p, g, m, v = np.ones(per, np.float32), grads[0].copy(), np.zeros(per, np.float32), np.zeros(per, np.float32)
        counter = [0]

        def stateless():
            counter[0] += 1
            adamcore.step(cfg, counter[0], p, g, m, v)
        out.append(("adamcore_py_stateless", stateless))

    nparams = [np.ones(per, np.float32) for _ in range(tensors)]
    nopt = NumpyAdam(nparams)
    out.append(("numpy", lambda: nopt.step(grads)))

    if torch is not None:
        for name, kwargs in (("torch_foreach", dict(foreach=True)), ("torch_fused", dict(fused=True))):
            tparams = [torch.ones(per, requires_grad=True) for _ in range(tensors)]
            for tp, g in zip(tparams, grads):
                tp.grad = torch.from_numpy(g.copy())
            topt = torch.optim.Adam(tparams, lr=1e-3, **kwargs)
            out.append((name, topt.step))
    if DeepSpeedCPUAdam is not None:
        dparams = [torch.ones(per, requires_grad=True) for _ in range(tensors)]
        for dp, g in zip(dparams, grads):
            dp.grad = torch.from_numpy(g.copy())
        dopt = DeepSpeedCPUAdam(dparams, lr=1e-3, adamw_mode=False)
        out.append(("deepspeed", dopt.step))
    return out


def bench(tensors, per, threads, budget):
    set_threads(threads)
    entries = contenders(tensors, per)
    n = tensors * per
    best = {name: float("inf") for name, _ in entries}
    reps = {}
    for name, fn in entries:  # warm up, and size the repetitions to the budget
        fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        reps[name] = max(1, min(100000, int(budget / 10 / once)))
    for _ in range(7):
        for name, fn in entries:
            # Let the previous contender's spinning threads (OpenMP, adamcore's pool) go to sleep first, so no
            # contender runs against another's busy-waiting on these 2 cores.
            time.sleep(0.005)
            r = reps[name]
            t0 = time.perf_counter()
            for _ in range(r):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / r)
    for name, _ in entries:
        print(f"side=py algorithm=adam contender={name} tensors={tensors} elements={n} threads={threads} "
              f"ns_per_element={best[name] * 1e9 / n:.4f} us_per_call={best[name] * 1e6:.3f}", flush=True)
    del entries


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes and budget (the smoke run of make test)")
    args = parser.parse_args()
    missing = [name for name, ok in (("torch", torch is not None), ("deepspeed", DeepSpeedCPUAdam is not None)) if not ok]
    print(f"# python {sys.version.split()[0]}, numpy {np.__version__}, adamcore {adamcore.__version__}, "
          f"torch {torch.__version__ if torch else 'missing'}, "
          f"deepspeed {'present' if DeepSpeedCPUAdam else 'missing'}, {os.cpu_count()} CPUs")
    if missing:
        print(f"# missing contenders: {', '.join(missing)}")
    sizes = [4096, 65536] if args.quick else [4096, 65536, 1 << 20, 1 << 24, 1 << 26]
    budget = 0.02 if args.quick else 0.3
    for threads in (1, 2):
        for n in sizes:
            bench(1, n, threads, budget)
        bench(1000, 64, threads, budget)
    adamcore.set_num_threads(0)


if __name__ == "__main__":
    main()
