"""Python-side benchmark: one fp32 Adam step through adamcore (numpy objects, the stateless call, and the
adamcore.torch drop-in), numpy, torch.optim.Adam (foreach and fused) and DeepSpeed's CPUAdam, interleaved round by
round on the same machine, 1 and 2 threads. Prints key=value lines for bench/report.py.

Every figure is the median over interleaved rounds (each contender in turn, a 20 ms pause before each), with the
min, max and quartiles of those rounds and the per-round times themselves (us_rounds=) so the report can show the
spread and pair rounds up for ratios. bytes_per_element is the traffic of the update (fp32 Adam: read p, g, m, v;
write p, m, v = 28 B), from which the report computes GB/s.

A contender that cannot be imported, constructed or stepped (torch missing, DeepSpeed's op build failing, out of
memory) is printed as a `missing ... reason=...` line and the run goes on.

Besides the size sweep, a "pertensor" group interleaves at 1000x64 and at 1x64000 (the same elements in one
tensor): per-tensor overhead = (t[1000x64] - t[1x64000]) / 1000; and adamcore.torch / torch fused with the gradients
rewritten in place before every step (same .grad objects: zero_grad(set_to_none=False) + backward) against new
gradient tensors every step (zero_grad(set_to_none=True) + backward). Only opt.step() is timed there.

others_cpus= is how many CPUs other processes kept busy, on average, while the group was timed (from /proc/stat
minus this process's CPU time): on a shared machine, figures with others_cpus well above 0 are contended.

    PYTHONPATH=build/python python3 bench/bench_py.py [--quick] [--skip NAME ...]
"""
import argparse
import ctypes
import os
import statistics
import sys
import time
import traceback

import numpy as np

import adamcore

BYTES_PER_ELEMENT = {"adam": 28}  # fp32: read p, g, m, v; write p, m, v


def _reason(exc):
    """One line for a failure: the exception's type and the first line of its message."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")
    return " ".join(line.split())[:300]


# Optional contenders: a failed import is a reason, never an exception that ends the run.
IMPORT_FAILURES = {}
try:
    import torch
except BaseException as exc:  # ImportError, but also a broken install raising anything (or sys.exit) on import
    if isinstance(exc, KeyboardInterrupt):
        raise
    torch = None
    IMPORT_FAILURES["torch"] = f"torch: {_reason(exc)}"
adamcore_torch = None
if torch is not None:
    try:
        import adamcore.torch as adamcore_torch
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        IMPORT_FAILURES["adamcore_torch"] = f"adamcore.torch: {_reason(exc)}"
DeepSpeedCPUAdam = None
if torch is not None:
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        IMPORT_FAILURES["deepspeed"] = f"deepspeed: {_reason(exc)}"


def _requires(module):
    """Why a contender that needs `module` (numpy, torch, adamcore_torch, deepspeed) cannot run, or None."""
    if module != "numpy" and torch is None:
        return IMPORT_FAILURES["torch"]
    return IMPORT_FAILURES.get(module)


def set_threads(n):
    adamcore.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:  # DeepSpeed's kernel uses the system OpenMP runtime (torch's wheel carries its own libgomp)
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(n)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------------------------
# The machine, for the report's header.
def _first_cpuinfo():
    info = {}
    try:
        for line in open("/proc/cpuinfo"):
            if not line.strip():
                if info:
                    break
                continue
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def _amd_core(family, model):
    if family == 23:
        return "Zen/Zen+" if model < 0x30 else "Zen 2"
    if family == 25:
        return "Zen 4" if 0x10 <= model < 0x20 or 0x60 <= model < 0x80 or 0xa0 <= model < 0xb0 else "Zen 3"
    if family == 26:
        return "Zen 5"
    return None


def _read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None


def machine_notes():
    notes = []
    info = _first_cpuinfo()
    flags = info.get("flags", "").split()
    family, model = info.get("cpu family"), info.get("model")
    cpu = f"cpu: {info.get('model name', 'unknown')}, {info.get('vendor_id', '?')} family {family} model {model}"
    if family and model and family.isdigit() and model.isdigit():
        cpu += f" (0x{int(family):x}/0x{int(model):x})"
        core = _amd_core(int(family), int(model)) if info.get("vendor_id") == "AuthenticAMD" else None
        if core:
            cpu += f" = {core}"
    cpu += f" stepping {info.get('stepping', '?')}"
    if "hypervisor" in flags:
        cpu += ", virtual machine (hypervisor flag)"
    notes.append(cpu)
    wanted = [f for f in ("sse4_2", "avx", "avx2", "fma", "f16c") if f in flags]
    wanted += sorted(f for f in flags if f.startswith("avx512") or f.startswith("amx") or f == "avx_vnni")
    notes.append(f"isa flags: {' '.join(wanted) or 'none of avx/avx2/fma/f16c'}"
                 f"{'' if any(f.startswith('avx512') for f in flags) else ' (no avx512)'}")
    caches = []
    for index in range(8):
        base = f"/sys/devices/system/cpu/cpu0/cache/index{index}"
        level, kind, size = _read(f"{base}/level"), _read(f"{base}/type"), _read(f"{base}/size")
        if level is None:
            break
        if kind != "Instruction":
            shared = _read(f"{base}/shared_cpu_list")
            caches.append(f"L{level} {size}" + (f" (cpus {shared})" if shared else ""))
    if caches:
        notes.append(f"caches (cpu0): {', '.join(caches)}")
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    defrag = _read("/sys/kernel/mm/transparent_hugepage/defrag")
    pick = lambda s: s[s.index("[") + 1:s.index("]")] if s and "[" in s else (s or "unknown")  # noqa: E731
    notes.append(f"transparent huge pages: enabled={pick(thp)} defrag={pick(defrag)} ({thp})")
    isa = getattr(adamcore, "active_isa", None)
    if isa is None:
        isa = getattr(getattr(adamcore, "_core", None), "active_isa", None)
    names = {0: "baseline", 1: "AVX2+FMA"}
    notes.append(f"adamcore {adamcore.__version__}: kernels {names.get(isa, isa) if isa is not None else 'unknown'}"
                 f" (adamcore._core.active_isa={isa}; ADAMCORE_ISA={os.environ.get('ADAMCORE_ISA', 'unset')}), "
                 f"default threads {adamcore.get_num_threads()}")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = "?"
    threads = f"threads: {os.cpu_count()} CPUs, {affinity} in the affinity mask"
    if torch is not None:
        threads += f", torch default intra-op {torch.get_num_threads()} inter-op {torch.get_num_interop_threads()}"
    threads += "; OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "unset")
    notes.append(threads)
    if torch is not None:
        try:
            capability = torch.backends.cpu.get_cpu_capability()
        except Exception as exc:
            capability = f"unknown ({_reason(exc)})"
        backend = next((line.split(":", 1)[1].strip() for line in torch.__config__.parallel_info().splitlines()
                        if line.startswith("ATen parallel backend")), "?")
        notes.append(f"torch {torch.__version__}: cpu capability {capability}, ATen parallel backend {backend}")
    else:
        notes.append(f"torch missing: {IMPORT_FAILURES['torch']}")
    notes.append(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    # Which build was measured (the Python package and adamcore.torch change under development).
    import hashlib
    files = [("adamcore", getattr(adamcore, "__file__", None)), ("_core", getattr(adamcore._core, "__file__", None)),
             ("adamcore.torch", getattr(adamcore_torch, "__file__", None))]
    built = []
    for label, path in files:
        try:
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:12]
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(path)))
            built.append(f"{label} {path} sha256:{digest} modified {stamp}")
        except (OSError, TypeError):
            pass
    if built:
        notes.append("measured: " + "; ".join(built))
    return notes


# ---------------------------------------------------------------------------------------------------------------
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


class Contender:
    """A step function `fn`, optionally an untimed `prep` run before every step (then each step is timed alone)."""

    def __init__(self, name, tensors, per, fn, prep=None):
        self.name, self.tensors, self.per, self.fn, self.prep = name, tensors, per, fn, prep
        self.times, self.spent = [], 0.0

    def round(self, reps):
        # One untimed step first: it refills the caches that the pause before each round let go (on these VMs an
        # idle core's caches were found emptied by the time it ran again).
        if self.prep is not None:
            self.prep()
        self.fn()
        if self.prep is None:
            t0 = time.perf_counter()
            for _ in range(reps):
                self.fn()
            return (time.perf_counter() - t0) / reps
        total = 0.0
        for _ in range(reps):
            self.prep()
            t0 = time.perf_counter()
            self.fn()
            total += time.perf_counter() - t0
        return total / reps

    def once_wall(self):
        """Wall time of one step including its prep (to size the repetitions to the budget)."""
        t0 = time.perf_counter()
        if self.prep is not None:
            self.prep()
        self.fn()
        return time.perf_counter() - t0


def _torch_params(tensors, per, grads):
    params = [torch.ones(per, dtype=torch.float32, requires_grad=True) for _ in range(tensors)]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    return params


def _grads_inplace(params, sources):
    """Same .grad objects, values rewritten in place: zero_grad(set_to_none=False) + backward."""
    def prep():
        for p, s in zip(params, sources):
            p.grad.copy_(s)
    return prep


def _grads_new(params, sources, reuse_counter):
    """New .grad tensors every step: zero_grad(set_to_none=True) + backward (the old ones are freed first, so the
    allocator may hand back the same addresses, as it does in training)."""
    def prep():
        before = [p.grad.data_ptr() for p in params]
        for p in params:
            p.grad = None
        for p, s in zip(params, sources):
            p.grad = s.clone()
        after = [p.grad.data_ptr() for p in params]
        reuse_counter[0] += sum(b == a for b, a in zip(before, after))
        reuse_counter[1] += len(set(before) & set(after))
        reuse_counter[2] += len(params)
    return prep


def builders(tensors, per, grads):
    """(name, tensors, per, needs, build) for every contender at `tensors` x `per`; build() -> (fn, prep)."""
    def adamcore_py():
        params = [np.ones(per, np.float32) for _ in range(tensors)]
        opt = adamcore.Adam(params, lr=1e-3)
        return (lambda: opt.step(grads)), None

    def adamcore_py_stateless():
        cfg = adamcore.configs.adam(lr=1e-3)
        p, g, m, v = np.ones(per, np.float32), grads[0].copy(), np.zeros(per, np.float32), np.zeros(per, np.float32)
        counter = [0]

        def stateless():
            counter[0] += 1
            adamcore.step(cfg, counter[0], p, g, m, v)
        return stateless, None

    def numpy_adam():
        opt = NumpyAdam([np.ones(per, np.float32) for _ in range(tensors)])
        return (lambda: opt.step(grads)), None

    def torch_optim(**kwargs):
        def build():
            opt = torch.optim.Adam(_torch_params(tensors, per, grads), lr=1e-3, **kwargs)
            return opt.step, None
        return build

    def adamcore_torch_adam():
        opt = adamcore_torch.Adam(_torch_params(tensors, per, grads), lr=1e-3)
        return opt.step, None

    def deepspeed():
        opt = DeepSpeedCPUAdam(_torch_params(tensors, per, grads), lr=1e-3, adamw_mode=False)
        return opt.step, None

    out = [("adamcore_py", "numpy", adamcore_py)]
    if tensors == 1:
        out.append(("adamcore_py_stateless", "numpy", adamcore_py_stateless))
    out += [("numpy", "numpy", numpy_adam),
            ("adamcore_torch", "adamcore_torch", adamcore_torch_adam),
            ("torch_foreach", "torch", torch_optim(foreach=True)),
            ("torch_fused", "torch", torch_optim(fused=True)),
            ("deepspeed", "deepspeed", deepspeed)]
    return [(name, tensors, per, needs, build) for name, needs, build in out]


def pertensor_builders(grads_small, grads_flat, reuse_counter):
    """The per-tensor group: 1000x64 and 1x64000 interleaved, and the gradient-replacement variants at 1000x64."""
    out = []
    for tensors, per, grads in ((1000, 64, grads_small), (1, 64000, grads_flat)):
        out += [spec for spec in builders(tensors, per, grads)
                if spec[0] in ("adamcore_py", "adamcore_torch", "torch_fused")]

    def variant(make_opt, kind):
        def build():
            params = _torch_params(1000, 64, grads_small)
            sources = [torch.from_numpy(g.copy()) for g in grads_small]
            opt = make_opt(params)
            prep = _grads_inplace(params, sources) if kind == "inplace" else _grads_new(params, sources, reuse_counter)
            return opt.step, prep
        return build
    for kind in ("inplace", "new"):
        out.append((f"adamcore_torch_grads_{kind}", 1000, 64, "adamcore_torch",
                    variant(lambda ps: adamcore_torch.Adam(ps, lr=1e-3), kind)))
        out.append((f"torch_fused_grads_{kind}", 1000, 64, "torch",
                    variant(lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True), kind)))
    return out


BROKEN = {}  # contender -> why it failed to start, for failures that do not depend on the layout


def _out_of_memory(exc):
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _cpu_snapshot():
    """(wall, busy CPU-seconds of the whole machine, CPU-seconds of this process): to tell how much of the machine
    other processes used while a group was timed (the bench's figures are only as clean as that)."""
    busy = None
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def _others_cpus(start, end):
    """Average number of CPUs busy with other processes between two snapshots, or None."""
    if start[1] is None or end[1] is None or end[0] <= start[0]:
        return None
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))


def emit_missing(name, tensors, per, threads, reason, group):
    algorithm = "adam_bf16" if group == "mixed" else "adam"
    print(f"missing side=py algorithm={algorithm} group={group} contender={name} tensors={tensors} "
          f"elements={tensors * per} threads={threads} reason={reason}", flush=True)


def mixed_builders(per, grads):
    """bf16 parameters (16-bit gradients, as autograd makes them) through each face that takes them: torch's fused
    Adam (its layout: bf16 state), adamcore.torch in that layout and with float32 state and master weights,
    DeepSpeed's CPUAdam with float32 state, and the offload form (float32 master, bf16 gradients, bf16 copy-out)
    through adamcore's numpy face. Bytes per element in MIXED_BYTES."""
    def bf16_params():
        params = [torch.ones(per, dtype=torch.bfloat16, requires_grad=True)]
        params[0].grad = torch.from_numpy(grads[0]).to(torch.bfloat16)
        return params

    def torch_fused():
        opt = torch.optim.Adam(bf16_params(), lr=1e-3, fused=True)
        return opt.step, None

    def adamcore_torch_adam(**kwargs):
        def build():
            opt = adamcore_torch.Adam(bf16_params(), lr=1e-3, **kwargs)
            return opt.step, None
        return build

    def deepspeed():
        opt = DeepSpeedCPUAdam(bf16_params(), lr=1e-3, adamw_mode=False)
        return opt.step, None

    def adamcore_offload():
        core = adamcore._core.Optimizer(adamcore.configs.adam(lr=1e-3))
        master = np.ones(per, np.float32)
        copy = np.zeros(per, np.uint16)
        grad = torch.from_numpy(grads[0]).to(torch.bfloat16).view(torch.int16).numpy()
        core.add_tensor(0, master, [], (adamcore._core.FLOAT32, adamcore._core.BFLOAT16, adamcore._core.FLOAT32, 0,
                                        adamcore._core.BFLOAT16, copy, None))
        gs = [grad]
        return (lambda: core.step(gs)), None

    out = [("torch_fused_bf16", "torch", torch_fused),
           ("adamcore_torch_bf16_state", "adamcore_torch", adamcore_torch_adam(state_dtype=torch.bfloat16)),
           ("adamcore_torch_fp32_state", "adamcore_torch", adamcore_torch_adam()),
           ("adamcore_torch_master", "adamcore_torch", adamcore_torch_adam(master_weights=True)),
           ("deepspeed_fp32_state", "deepspeed", deepspeed),
           ("adamcore_offload_bf16", "numpy", adamcore_offload)]
    return [(name, 1, per, needs, build) for name, needs, build in out]


# Bytes a step moves per element, by contender of the mixed group (reads + writes; bf16 2, fp32 4).
MIXED_BYTES = {"torch_fused_bf16": 14, "adamcore_torch_bf16_state": 14, "adamcore_torch_fp32_state": 22,
               "deepspeed_fp32_state": 22, "adamcore_torch_master": 28, "adamcore_offload_bf16": 28}


def run_group(specs, threads, budget, rounds, group, skip, only=(), cap=None):
    """Build every contender (a failure is a `missing` line), then time them in interleaved rounds. A contender
    whose rounds have taken more than `cap` seconds of wall time gets no more rounds (at least 2): on a contended
    machine one OpenMP step can take seconds, and the smoke run must stay short."""
    entries = []
    for name, tensors, per, needs, build in specs:
        if only and name not in only and name.split("_grads_")[0] not in only:
            continue
        if name in skip or name.split("_grads_")[0] in skip:
            emit_missing(name, tensors, per, threads, "skipped (--skip)", group)
            continue
        reason = _requires(needs) or BROKEN.get(name)
        if reason is None:
            try:
                fn, prep = build()
                entry = Contender(name, tensors, per, fn, prep)
                if prep is not None:
                    prep()
                fn()  # warm up: first-touch page faults, lazily created state
                once = max(entry.once_wall(), 1e-7)
                # Repetitions: about budget / rounds of wall time per round (prep included), at least 1.
                entry.reps = max(1, min(100000, int(budget / rounds / once)))
                entries.append(entry)
                continue
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                reason = f"failed to start: {_reason(exc)}"
                if not _out_of_memory(exc):  # e.g. DeepSpeed's op build: do not retry it at every layout
                    BROKEN[name] = reason
                    print(f"# {name} failed to start at {tensors}x{per}, {threads} thread{'s' if threads > 1 else ''}: "
                          "not retried at the other layouts", flush=True)
                if os.environ.get("ADAMCORE_BENCH_TRACEBACK"):
                    traceback.print_exc()
        emit_missing(name, tensors, per, threads, reason, group)
    start = _cpu_snapshot()
    for round_index in range(rounds):
        # Every other round backwards, so that no contender always runs first (or right after the same one).
        for entry in (list(entries) if round_index % 2 == 0 else list(reversed(entries))):
            if cap is not None and len(entry.times) >= 2 and entry.spent > cap:
                continue
            # Let the previous contender's spinning threads (OpenMP, adamcore's pool) go to sleep first, so no
            # contender runs against another's busy-waiting on these 2 cores: torch's OpenMP worker was measured
            # spinning ~5 ms after each parallel region (CPU time used during a sleep), adamcore's pool ~0.1 ms.
            time.sleep(0.02)
            try:
                t0 = time.perf_counter()
                entry.times.append(entry.round(entry.reps))
                entry.spent += time.perf_counter() - t0
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                entries.remove(entry)
                emit_missing(entry.name, entry.tensors, entry.per, threads, f"failed while timed: {_reason(exc)}",
                             group)
    others = _others_cpus(start, _cpu_snapshot())
    load = f" others_cpus={others:.2f}" if others is not None else ""
    for entry in entries:
        n = entry.tensors * entry.per
        t = sorted(entry.times)
        q1, median, q3 = statistics.quantiles(t, n=4, method="inclusive") if len(t) > 1 else (t[0], t[0], t[0])
        ns = lambda x: f"{x * 1e9 / n:.4f}"  # noqa: E731
        algorithm = "adam_bf16" if group == "mixed" else "adam"
        nbytes = MIXED_BYTES.get(entry.name, BYTES_PER_ELEMENT["adam"])
        print(f"side=py algorithm={algorithm} group={group} contender={entry.name} tensors={entry.tensors} elements={n} "
              f"threads={threads} ns_per_element={ns(median)} us_per_call={median * 1e6:.3f} "
              f"ns_min={ns(t[0])} ns_q1={ns(q1)} ns_q3={ns(q3)} ns_max={ns(t[-1])} rounds={len(t)} "
              f"reps={entry.reps} bytes_per_element={nbytes}{load} "
              f"us_rounds={','.join(f'{x * 1e6:.3f}' for x in entry.times)}", flush=True)
    del entries


def check_adamcore_torch():
    """adamcore.torch.Adam must give torch.optim.Adam's numbers (a fast optimizer that does nothing is not fast)."""
    if adamcore_torch is None:
        return
    try:
        gen = torch.Generator().manual_seed(0)
        shapes = [(64,), (300, 200)]  # a small tensor and one above the 32K-element threading threshold
        start = [torch.randn(s, generator=gen) for s in shapes]
        # New gradient tensors (set_to_none=True) and the same ones rewritten in place (set_to_none=False), mixed:
        # an optimizer that caches per-gradient work must notice both.
        modes = ["new", "new", "inplace", "inplace", "new", "inplace"]
        grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in modes]
        results = []
        for make in (lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True),
                     lambda ps: adamcore_torch.Adam(ps, lr=1e-2)):
            params = [x.clone().requires_grad_(True) for x in start]
            opt = make(params)
            for mode, gs in zip(modes, grads):
                for p, g in zip(params, gs):
                    if mode == "new" or p.grad is None:
                        p.grad = None
                        p.grad = g.clone()
                    else:
                        p.grad.copy_(g)
                opt.step()
            results.append([p.detach() for p in params])
        diff = max(float((a - b).abs().max()) for a, b in zip(*results))
        moved = min(float((a - s).abs().max()) for a, s in zip(results[1], start))
        verdict = "ok" if diff <= 1e-5 and moved > 0 else "MISMATCH"
        print(f"# check: adamcore.torch.Adam vs torch.optim.Adam(fused=True), {len(modes)} steps lr=1e-2 on 64 and "
              "300x200, gradients new and rewritten in place: "
              f"max |difference| {diff:.3g}, smallest max |update| {moved:.3g}: {verdict}", flush=True)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(f"# check: adamcore.torch.Adam vs torch.optim.Adam failed: {_reason(exc)}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes and budget (the smoke run of make test)")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME",
                        help="leave a contender out (reported as missing), e.g. --skip deepspeed")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these contenders (e.g. --only adamcore_torch --only torch_fused); the others "
                             "are left out of the output")
    args = parser.parse_args()
    skip, only = set(args.skip), set(args.only)
    print(f"# python {sys.version.split()[0]}, numpy {np.__version__}, adamcore {adamcore.__version__}, "
          f"torch {torch.__version__ if torch else 'missing'}, "
          f"deepspeed {'present' if DeepSpeedCPUAdam else 'missing'}, {os.cpu_count()} CPUs")
    for note in machine_notes():
        print(f"# machine: {note}")
    if IMPORT_FAILURES:
        print(f"# missing contenders: {'; '.join(IMPORT_FAILURES.values())}")
    check_adamcore_torch()
    sizes = [4096, 65536] if args.quick else [4096, 65536, 1 << 20, 1 << 24, 1 << 26]
    layouts = [(1, n) for n in sizes] + [(1000, 64)] + ([] if args.quick else [(200, 65536)])
    budget = 0.02 if args.quick else 0.25
    rounds = 5 if args.quick else 11
    cap = 0.3 if args.quick else 30.0  # wall seconds of rounds per contender and layout, see run_group
    print(f"# rounds: {rounds} interleaved per figure, median reported (spread: min, quartiles, max); "
          f"budget {budget} s per contender and layout", flush=True)
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        set_threads(threads)
        for tensors, per in layouts:
            grads = [rng.standard_normal(per, dtype=np.float32) for _ in range(tensors)]
            run_group(builders(tensors, per, grads), threads, budget, rounds, "sizes", skip, only, cap)
            del grads
        reuse = [0, 0, 0]
        grads_small = [rng.standard_normal(64, dtype=np.float32) for _ in range(1000)]
        grads_flat = [np.concatenate(grads_small)]
        if not args.quick or threads == 1:  # the smoke run exercises the group once
            run_group(pertensor_builders(grads_small, grads_flat, reuse), threads, budget, rounds, "pertensor", skip,
                      only, cap)
        for per in ([65536] if args.quick else [65536, 1 << 24]):
            grads = [rng.standard_normal(per, dtype=np.float32)]
            run_group(mixed_builders(per, grads), threads, budget, rounds, "mixed", skip, only, cap)
            del grads
        if reuse[2]:
            print(f"# pertensor, {threads} thread{'s' if threads > 1 else ''}: new-gradient variants: of the new "
                  f".grad tensors, {100 * reuse[0] / reuse[2]:.0f}% got their parameter's previous gradient address "
                  f"back from the allocator, {100 * reuse[1] / reuse[2]:.0f}% an address of the previous step's "
                  "gradients (what a cache keyed on data_ptr would see; keyed on the tensor object it never hits)",
                  flush=True)
    adamcore.set_num_threads(0)


if __name__ == "__main__":
    main()
