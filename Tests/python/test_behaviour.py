"""Checkpoints, parity with the C API, rejections, GIL release and leaks."""
import array
import ctypes
import gc
import os
import threading
import tracemalloc

import adamcore
import numpy as np
import pytest
from adamcore import _core

from reference import Problem

OPTIMIZERS = [
    ("adam", adamcore.Adam, dict(lr=1e-2)),
    ("amsgrad", adamcore.Adam, dict(lr=1e-2, amsgrad=True)),
    ("adamw", adamcore.AdamW, dict(lr=1e-2)),
    ("sgd nesterov", adamcore.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
    ("rmsprop centered momentum", adamcore.RMSprop, dict(centered=True, momentum=0.5)),
    ("adagrad", adamcore.Adagrad, dict(initial_accumulator_value=0.1, lr_decay=0.01)),
    ("adafix next-gradient", adamcore.AdaFix, dict(lr=1e-2, next_gradient=True)),
    ("adafix exact", adamcore.AdaFix, dict(lr=1e-2)),
]


def run(opt, params, problem, steps, dtype, first=1):
    for t in range(first, first + steps):
        grads = problem.smooth_grads(t, dtype)
        if isinstance(opt, adamcore.AdaFix) and not opt.next_gradient:
            opt.step(grads, grad_fn=lambda: [g + 3 * p for g, p in zip(grads, params)])
        else:
            opt.step(grads)


def check_restore_continues_bit_identically(name, cls, kwargs, transfer, steps=300):
    """Run `steps` straight; run half, `transfer(a, b)` the state into a fresh optimizer over copies of the
    parameters (whose group 2 lr must come from the transfer), run the other half: identical bits."""
    problem = Problem([33, 4], seed=5)
    dtype = np.float32
    straight = [x.astype(dtype) for x in problem.initial]
    opt = cls([{"params": straight[:1]}, {"params": straight[1:], "lr": 5e-3}], **kwargs)
    run(opt, straight, problem, steps, dtype)

    first = [x.astype(dtype) for x in problem.initial]
    a = cls([{"params": first[:1]}, {"params": first[1:], "lr": 5e-3}], **kwargs)
    half = steps // 2
    run(a, first, problem, half, dtype)
    resumed_params = [p.copy() for p in first]
    b = cls([{"params": resumed_params[:1]}, {"params": resumed_params[1:]}], **kwargs)
    transfer(a, b)
    assert b.param_groups[1]["lr"] == 5e-3 and b.step_count == half
    run(b, resumed_params, problem, steps - half, dtype, first=half + 1)
    for x, y in zip(straight, resumed_params):
        assert np.array_equal(x, y), name
    for i in opt.state:
        for slot in opt.state[i]:
            assert np.array_equal(opt.state[i][slot], b.state[i][slot]), (name, slot)
    assert b.step_count == steps


@pytest.mark.parametrize("name,cls,kwargs", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_state_dict_round_trip_continues_bit_identically(name, cls, kwargs):
    check_restore_continues_bit_identically(name, cls, kwargs, lambda a, b: b.load_state_dict(a.state_dict()))


def test_load_state_dict_checks_everything_before_changing_anything():
    w = np.ones(8, np.float32)
    opt = adamcore.Adam([w], lr=0.1)
    opt.step([np.full(8, 0.5, np.float32)])
    good = opt.state_dict()
    snapshot = {k: v.copy() for k, v in opt.state[0].items()}
    bad_shape = {**good, "state": {0: {**good["state"][0], "exp_avg": np.zeros(7, np.float32)}}}
    bad_dtype = {**good, "state": {0: {**good["state"][0], "exp_avg": np.zeros(8, np.float64)}}}
    missing = {**good, "state": {0: {"step": 1, "exp_avg": np.zeros(8, np.float32)}}}
    bad_lr = {**good, "param_groups": [{**good["param_groups"][0], "lr": -1.0}]}
    for broken in (bad_shape, bad_dtype, missing):
        with pytest.raises(ValueError):
            opt.load_state_dict(broken)
    with pytest.raises(adamcore.AdamCoreError, match="lr"):
        opt.load_state_dict(bad_lr)
    for k, v in snapshot.items():
        assert np.array_equal(opt.state[0][k], v)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.step_count == 1


# ---------------------------------------------------------------------------------------------------------------
# Parity with the C API (ctypes over the same library): bit-identical.

def _library():
    """The libadamcore the extension loaded (build/lib in the build tree, beside the extension in a wheel)."""
    with open("/proc/self/maps") as maps:
        path = next(line.split()[-1] for line in maps if "libadamcore.so" in line)
    return ctypes.CDLL(path)


class CConfig(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("algorithm", ctypes.c_int32), ("flags", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32)] + [(name, ctypes.c_double) for name in (
                    "lr", "beta1", "beta2", "eps", "eps_root", "weight_decay", "momentum", "dampening", "alpha",
                    "lr_decay", "initial_accumulator_value")]


def _c_config(lib, config):
    c = CConfig()
    assert lib.adamcore_config_init(ctypes.byref(c), config.algorithm) == 0
    c.flags = config.flags
    for name, _ in CConfig._fields_[4:]:
        setattr(c, name, getattr(config, name))
    assert ctypes.sizeof(c) == c.struct_size
    return c


PARITY = [
    ("adam", adamcore.configs.adam(lr=1e-2, weight_decay=0.1, amsgrad=True), "adamcore_adam_step"),
    ("adamw", adamcore.configs.adam(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True), "adamcore_adam_step"),
    ("sgd", adamcore.configs.sgd(lr=1e-2, momentum=0.9), "adamcore_sgd_step"),
    ("rmsprop", adamcore.configs.rmsprop(centered=True, momentum=0.9), "adamcore_rmsprop_step"),
    ("adagrad", adamcore.configs.adagrad(initial_accumulator_value=0.1), "adamcore_adagrad_step"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,config,symbol", PARITY, ids=[p[0] for p in PARITY])
def test_python_and_c_give_the_same_bits(name, config, symbol, dtype):
    lib = _library()
    suffix = "_f32" if dtype == np.float32 else "_f64"
    fn = getattr(lib, symbol + suffix)
    c = _c_config(lib, config)
    problem = Problem([45], seed=3)
    slots = len(config.state_names)
    fill = config.initial_accumulator_value
    py_p, c_p = problem.initial[0].astype(dtype), problem.initial[0].astype(dtype)
    py_s = [np.full(45, fill, dtype) for _ in range(slots)]
    c_s = [np.full(45, fill, dtype) for _ in range(slots)]
    obj_p = problem.initial[0].astype(dtype)
    opt_cls = {"adam": adamcore.Adam, "adamw": adamcore.AdamW, "sgd": adamcore.SGD, "rmsprop": adamcore.RMSprop,
               "adagrad": adamcore.Adagrad}[name]
    kwargs = {"adam": dict(lr=1e-2, weight_decay=0.1, amsgrad=True), "adamw": dict(lr=1e-2, weight_decay=0.1),
              "sgd": dict(lr=1e-2, momentum=0.9), "rmsprop": dict(centered=True, momentum=0.9),
              "adagrad": dict(initial_accumulator_value=0.1)}[name]
    opt = opt_cls([obj_p], **kwargs)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)
    for t in range(1, 101):
        g = problem.grads(t, dtype)[0]
        adamcore.step(config, t, py_p, g, *py_s)
        opt.step([g])
        # The C signature's slots: Adam (m, v, vmax|NULL), SGD (buf), RMSprop (sq, grad_avg, buf), AdaGrad (sum).
        args = [ptr(s) for s in c_s]
        if symbol == "adamcore_adam_step" and slots == 2:
            args.append(None)
        status = fn(ctypes.byref(c), ctypes.c_int64(t), ctypes.c_size_t(45), ptr(c_p), ptr(g), *args)
        assert status == 0, _core.status_name(status)
    assert np.array_equal(py_p, c_p) and np.array_equal(obj_p, c_p), name
    for a, b in zip(py_s, c_s):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------------------------
# Rejections: a clear exception naming the argument, and every array byte-identical afterwards.

def _arrays():
    w = np.linspace(-1, 1, 10).astype(np.float32)
    b = np.linspace(0, 1, 3)
    return w, b


def test_every_rejection_leaves_the_arrays_untouched():
    w, b = _arrays()
    opt = adamcore.Adam([w, b], lr=0.1)
    gw, gb = np.ones(10, np.float32), np.ones(3)
    before = [w.copy(), b.copy()] + [s.copy() for slots in opt.state.values() for s in slots.values()]

    def unchanged():
        after = [w, b] + [s for slots in opt.state.values() for s in slots.values()]
        return all(np.array_equal(x, y) for x, y in zip(before, after))

    readonly = gw.copy()
    readonly.flags.writeable = False
    cases = [
        (TypeError, "grads\\[0\\].*dtype", lambda: opt.step([gw.astype(np.float64), gb])),
        (TypeError, "grads\\[1\\].*dtype", lambda: opt.step([gw, gb.astype(np.float32)])),
        (TypeError, "grads\\[0\\].*float16|grads\\[0\\].*dtype", lambda: opt.step([gw.astype(np.float16), gb])),
        (TypeError, "grads\\[1\\].*float32 or float64", lambda: opt.step([gw, np.ones(3, np.int64)])),
        (TypeError, "grads\\[0\\].*buffer", lambda: opt.step([[1.0] * 10, gb])),
        (ValueError, "grads\\[0\\].*C-contiguous", lambda: opt.step([np.ones(20, np.float32)[::2], gb])),
        (ValueError, "grads\\[1\\].*elements", lambda: opt.step([gw, np.ones(4)])),
        (ValueError, "expected 2 gradients", lambda: opt.step([gw])),
        (TypeError, "list or tuple", lambda: opt.step(gw.tolist()[0])),
        (adamcore.AdamCoreError, "overlap", lambda: opt.step([w, gb])),
    ]
    for error, pattern, call in cases:
        with pytest.raises(error, match=pattern):
            call()
        assert unchanged(), pattern
    assert opt.step_count == 0
    opt.step([readonly, gb])  # gradients may be read-only
    assert not unchanged()


def test_parameters_must_be_writable_contiguous_float_arrays():
    ro = np.ones(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="params?.*read-only|param.*read-only"):
        adamcore.Adam([ro])
    with pytest.raises(ValueError, match="C-contiguous"):
        adamcore.SGD([np.ones((4, 4), np.float32).T])
    with pytest.raises(TypeError, match="params\\[1\\].*float32, float64, float16 or bfloat16"):
        adamcore.SGD([np.ones(3, np.float32), np.ones(3, np.int32)])
    with pytest.raises(ValueError, match="empty"):
        adamcore.Adam([])
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        adamcore.Adam([{"params": [np.ones(3, np.float32)], "momentum": 0.9}])
    shared = np.ones(6, np.float32)
    with pytest.raises(adamcore.AdamCoreError, match="overlap") as info:
        adamcore.Adam([shared, shared[3:]])
    assert info.value.name == "ADAMCORE_E_OVERLAP" and info.value.status == -3


@pytest.mark.parametrize("make,field", [
    (lambda p: adamcore.Adam(p, lr=-1), "lr"),
    (lambda p: adamcore.Adam(p, betas=(1.0, 0.999)), "beta1"),
    (lambda p: adamcore.Adam(p, betas=(0.9, float("nan"))), "beta2"),
    (lambda p: adamcore.AdamW(p, eps=-1e-8), "eps"),
    (lambda p: adamcore.Adam(p, weight_decay=float("inf")), "weight_decay"),
    (lambda p: adamcore.SGD(p, momentum=2), "momentum"),
    (lambda p: adamcore.SGD(p, nesterov=True), "Nesterov"),
    (lambda p: adamcore.SGD(p, momentum=0.9, dampening=0.5, nesterov=True), "dampening"),
    (lambda p: adamcore.RMSprop(p, alpha=1.5), "alpha"),
    (lambda p: adamcore.Adagrad(p, lr_decay=-1), "lr_decay"),
    (lambda p: adamcore.Adagrad(p, initial_accumulator_value=-1), "initial_accumulator_value"),
])
def test_bad_hyperparameters_name_the_field(make, field):
    w = np.ones(5, np.float32)
    with pytest.raises(adamcore.AdamCoreError, match=field):
        make([w])
    assert np.array_equal(w, np.ones(5, np.float32))


def test_scheduler_changes_are_validated_at_the_next_step():
    w = np.ones(5, np.float32)
    opt = adamcore.Adam([w], lr=0.1)
    opt.param_groups[0]["lr"] = 0.05
    opt.step([np.ones(5, np.float32)])
    assert w[0] == pytest.approx(1 - 0.05)
    opt.param_groups[0]["lr"] = -1.0
    before = w.copy()
    with pytest.raises(adamcore.AdamCoreError, match="lr"):
        opt.step([np.ones(5, np.float32)])
    assert np.array_equal(w, before) and opt.step_count == 1
    opt.param_groups[0]["lr"] = 0.05
    opt.param_groups[0]["amsgrad"] = True  # would need a third state buffer: refused
    with pytest.raises(adamcore.AdamCoreError, match="state"):
        opt.step([np.ones(5, np.float32)])


def test_adafix_grad_fn_rules():
    w = np.ones(4, np.float32)
    opt = adamcore.AdaFix([w], lr=0.1)
    with pytest.raises(TypeError, match="grad_fn"):
        opt.step([np.ones(4, np.float32)])
    assert np.array_equal(w, np.ones(4, np.float32)) and opt.step_count == 0
    # grad_fn is evaluated at the new point, after the update: wrong output is reported and L stays as it was.
    with pytest.raises(ValueError, match="new_grads\\[0\\].*elements"):
        opt.step([np.ones(4, np.float32)], grad_fn=lambda: [np.ones(3, np.float32)])
    assert opt.lipschitz == 0 and opt.step_count == 1
    with pytest.raises(ValueError, match="expected 1 gradients"):
        opt.step([np.ones(4, np.float32)], grad_fn=lambda: [])
    opt.step([np.ones(4, np.float32)], grad_fn=lambda: [np.full(4, 0.5, np.float32)])
    assert opt.lipschitz > 0


def test_functional_rejections():
    p, g, m, v = (np.zeros(6, np.float32) for _ in range(4))
    with pytest.raises(TypeError, match="state buffers"):
        adamcore.step(adamcore.configs.adam(), 1, p, g, m)
    with pytest.raises(adamcore.AdamCoreError, match="step"):
        adamcore.adam_step(p, g, m, v, step=0)
    with pytest.raises(ValueError, match="length"):
        adamcore.adam_step(p, g, m, np.zeros(5, np.float32), step=1)
    with pytest.raises(TypeError, match="dtype differs"):
        adamcore.adam_step(p, g, m, np.zeros(6), step=1)
    with pytest.raises(TypeError, match="rmsprop_step"):
        adamcore.rmsprop_step(p, g, m, v, step=1)
    assert not p.any() and not m.any() and not v.any()


# ---------------------------------------------------------------------------------------------------------------

def test_buffer_protocol_inputs():
    w = array.array("f", [1.0] * 7)
    opt = adamcore.SGD([w], lr=0.5)
    opt.step([memoryview(array.array("f", [1.0] * 7))])
    assert list(w) == [0.5] * 7
    p = np.ones((3, 4))
    adamcore.sgd_step(p, np.ones((3, 4)), step=1, lr=0.25)
    assert np.all(p == 0.75)


def test_the_production_module_has_no_test_hooks():
    """The GIL probe lives only in the test build of the extension (test_gil.py runs against that)."""
    assert not hasattr(_core, "_gil_held_in_last_kernel")


def test_distinct_optimizers_in_threads_match_sequential_results():
    def train(seed, out):
        problem = Problem([257], seed)
        p = problem.initial[0].astype(np.float32)
        opt = adamcore.Adam([p], lr=1e-2)
        for t in range(1, 301):
            opt.step(problem.grads(t, np.float32))
        out[seed] = p

    sequential, threaded = {}, {}
    for seed in range(4):
        train(seed, sequential)
    threads = [threading.Thread(target=train, args=(seed, threaded)) for seed in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for seed in range(4):
        assert np.array_equal(sequential[seed], threaded[seed])


def test_no_leaks_over_100k_steps():
    w, b = np.zeros(16, np.float32), np.zeros(3)
    gw, gb = np.ones(16, np.float32), np.ones(3)
    opt = adamcore.Adam([w, b])
    grads = [gw, gb]
    config = adamcore.configs.sgd(lr=1e-3)
    for _ in range(1000):  # warm up caches and interned objects
        opt.step(grads)
        adamcore.step(config, 1, w, gw)
    gc.collect()
    refs = [__import__("sys").getrefcount(x) for x in (w, b, gw, gb, grads)]
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    for _ in range(100_000):
        opt.step(grads)
        adamcore.step(config, 1, w, gw)
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert end - start < 4096, f"{end - start} bytes retained over 1e5 steps"
    assert refs == [__import__("sys").getrefcount(x) for x in (w, b, gw, gb, grads)]


def test_version_and_module_surface():
    assert adamcore.__version__ == _core.library_version == _core.header_version
    assert adamcore.Config(_core.ADAM).state_names == ("exp_avg", "exp_avg_sq")
    assert adamcore.configs.rmsprop(centered=True, momentum=0.9).state_names == ("square_avg", "grad_avg",
                                                                                  "momentum_buffer")


def test_thread_count_api():
    default = adamcore.get_num_threads()
    assert default >= 1
    adamcore.set_num_threads(2)
    assert adamcore.get_num_threads() == 2
    with pytest.raises(adamcore.AdamCoreError, match="thread"):
        adamcore.set_num_threads(-1)
    with pytest.raises(adamcore.AdamCoreError, match="thread"):
        adamcore.set_num_threads(1 << 40)
    adamcore.set_num_threads(0)
    assert adamcore.get_num_threads() == default


def test_large_steps_are_identical_across_thread_counts():
    problem = Problem([150_001, 70], seed=4)
    results = []
    for threads in (1, 2):
        adamcore.set_num_threads(threads)
        params = [x.astype(np.float32) for x in problem.initial]
        opt = adamcore.AdaFix(params, lr=1e-2, next_gradient=True)
        for t in range(1, 6):
            opt.step(problem.smooth_grads(t, np.float32))
        results.append((params, opt.lipschitz))
    adamcore.set_num_threads(0)
    assert all(np.array_equal(a, b) for a, b in zip(results[0][0], results[1][0]))
    assert results[0][1] == results[1][1]


def _threaded_steps_in_child(queue):
    adamcore.set_num_threads(2)
    problem = Problem([100_003], seed=6)
    p = problem.initial[0].astype(np.float32)
    opt = adamcore.Adam([p], lr=1e-2)
    for t in range(1, 4):
        opt.step(problem.grads(t, np.float32))
    queue.put(p.tobytes())


def test_a_forked_child_can_step_with_threads():
    import multiprocessing
    adamcore.set_num_threads(2)
    problem = Problem([100_003], seed=6)
    p = problem.initial[0].astype(np.float32)
    opt = adamcore.Adam([p], lr=1e-2)
    for t in range(1, 4):  # the pool's workers exist in the parent now
        opt.step(problem.grads(t, np.float32))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_threaded_steps_in_child, args=(queue,))
    child.start()
    result = queue.get(timeout=60)
    child.join(timeout=60)
    adamcore.set_num_threads(0)
    assert child.exitcode == 0, "the child must finish (a pool inherited across fork must not hang)"
    assert result == p.tobytes()


@pytest.mark.parametrize("edit", ["setitem", "ior", "update", "pop_setdefault", "replace_dict_items"])
def test_every_way_of_editing_a_param_group_takes_effect(edit):
    """A group edited in any way a dict can be is what the next step uses (issue: |= and pop went unseen)."""
    def run(apply_edit):
        w = np.ones(4, np.float32)
        opt = adamcore.SGD([w], lr=0.5)
        opt.step([np.ones(4, np.float32)])
        apply_edit(opt.param_groups[0])
        opt.step([np.ones(4, np.float32)])
        return w

    def setdefault_after_pop(g):
        g.pop("lr")
        g.setdefault("lr", 0.25)

    edits = {
        "setitem": lambda g: g.__setitem__("lr", 0.25),
        "ior": lambda g: g.__ior__({"lr": 0.25}),
        "update": lambda g: g.update(lr=0.25),
        "pop_setdefault": setdefault_after_pop,
        "replace_dict_items": lambda g: dict.__setitem__(g, "lr", 0.25),
    }
    np.testing.assert_array_equal(run(edits[edit]), np.full(4, 1 - 0.5 - 0.25, np.float32))


def test_an_unknown_key_added_later_is_refused_at_the_next_step():
    w = np.ones(4, np.float32)
    opt = adamcore.SGD([w], lr=0.5)
    opt.param_groups[0] |= {"lr_typo": 0.1}
    with pytest.raises(TypeError):
        opt.step([np.ones(4, np.float32)])
    np.testing.assert_array_equal(w, np.ones(4, np.float32))
