"""Property tests (hypothesis): random valid and invalid arguments. A call either succeeds, with the value a plain
float64 reference gives, or raises a documented exception and leaves every array untouched; never anything else."""
import math

import adamcore
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ERRORS = (adamcore.AdamCoreError, TypeError, ValueError, BufferError)

weird = st.sampled_from([math.nan, math.inf, -math.inf, -1e-3, -0.0, 1.0, 1.5, 1e308])
unit = st.one_of(st.floats(0, 0.999999), weird)
positive = st.one_of(st.floats(0, 10), weird)


def adam_config_is_valid(lr, beta1, beta2, eps, weight_decay):
    finite_nonneg = lambda x: math.isfinite(x) and x >= 0
    return (finite_nonneg(lr) and finite_nonneg(eps) and finite_nonneg(weight_decay)
            and 0 <= beta1 < 1 and 0 <= beta2 < 1)


@st.composite
def arrays_for_a_step(draw):
    n = draw(st.integers(0, 40))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    arrays = []
    for role in range(4):  # param, grad, exp_avg, exp_avg_sq
        kind = draw(st.sampled_from(["ok"] * 8 + ["length", "dtype", "strided", "readonly", "int"]))
        length = n + 1 if kind == "length" else n
        a_dtype = np.float64 if dtype is np.float32 else np.float32
        if kind == "dtype":
            a = np.zeros(length, a_dtype)
        elif kind == "int":
            a = np.zeros(length, np.int32)
        elif kind == "strided":
            a = np.zeros(2 * length, dtype)[::2]
        else:
            a = np.zeros(length, dtype)
        a[...] = draw(st.lists(st.floats(-2, 2), min_size=length, max_size=length)) if length else []
        if role == 3:
            a[...] = np.abs(a)
        if kind == "readonly":
            a.setflags(write=False)
        arrays.append((kind, a))
    if all(kind == "dtype" for kind, _ in arrays):  # all four of the other float type: a valid step in that type
        return a_dtype, [("ok", a) for _, a in arrays]
    return dtype, arrays


def reference_adam(t, p, g, m, v, lr, beta1, beta2, eps, weight_decay, dtype):
    p, g, m, v = (np.asarray(x, np.float64) for x in (p, g, m, v))
    # Hyperparameters reach the arrays' precision as the library (and torch) use them: rounded once to the dtype, so
    # weight_decay = 1e308 is +inf for float32 and 0 * inf is NaN there, as in torch.
    with np.errstate(all="ignore"):
        lr, weight_decay, eps = (float(dtype(x)) for x in (lr, weight_decay, eps))
        h = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * h
        v = beta2 * v + (1 - beta2) * h * h
        denom = np.sqrt(v / (1 - beta2 ** t)) + eps
        return p - lr / (1 - beta1 ** t) * m / denom, m, v


@SETTINGS
@given(lr=positive, beta1=unit, beta2=unit, eps=st.one_of(st.floats(1e-8, 1e-2), weird),
       weight_decay=st.one_of(st.just(0.0), positive), t=st.one_of(st.integers(1, 10**6), st.integers(-5, 0)),
       data=arrays_for_a_step())
def test_stateless_adam_step(lr, beta1, beta2, eps, weight_decay, t, data):
    dtype, arrays = data
    valid_config = adam_config_is_valid(lr, beta1, beta2, eps, weight_decay)
    try:
        cfg = adamcore.configs.adam(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    except adamcore.AdamCoreError:
        assert not valid_config
        return
    assert valid_config
    before = [a.copy() for _, a in arrays]
    # A strided view of 0 or 1 elements is contiguous, so numpy (rightly) exports it as a plain buffer.
    # The gradient (role 1) is only read, so a read-only gradient is fine.
    valid_call = t >= 1 and all(kind == "ok" or (kind == "strided" and a.flags.c_contiguous) or
                                (kind == "readonly" and role == 1) for role, (kind, a) in enumerate(arrays))
    try:
        adamcore.step(cfg, t, *(a for _, a in arrays))
    except ERRORS:
        assert not valid_call
        for (_, a), b in zip(arrays, before):
            assert np.array_equal(a, b)
        return
    assert valid_call
    p, m, v = reference_adam(t, *before, lr, beta1, beta2, eps, weight_decay, dtype)
    ulp = np.finfo(dtype).eps
    with np.errstate(all="ignore"):
        for got, want in ((arrays[0][1], p), (arrays[2][1], m), (arrays[3][1], v)):
            finite = np.isfinite(want)
            scale = np.abs(want[finite]).max(initial=0) + 1
            assert np.all(np.abs(got[finite] - want[finite]) <= 64 * ulp * scale), (got, want)


@SETTINGS
@given(position=st.integers(0, 10**6), value=st.integers(0, 255), cut=st.integers(0, 64))
def test_a_damaged_checkpoint_loads_or_is_refused_whole(position, value, cut):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=13).astype(np.float32), rng.normal(size=5)]
    opt = adamcore.Adam(params, amsgrad=True)
    opt.step([np.ones(13, np.float32), np.ones(5)])
    good = bytearray(opt.checkpoint_bytes())
    opt.step([np.full(13, 0.5, np.float32), np.full(5, 0.25)])
    bad = bytearray(good)
    bad[position % len(bad)] = value
    bad = bytes(bad[:len(bad) - cut])
    before = [a.copy() for s in opt.state.values() for a in s.values()]
    try:
        opt.load_bytes(bad)
    except adamcore.AdamCoreError as error:
        assert error.name in ("ADAMCORE_E_FORMAT", "ADAMCORE_E_MISMATCH")
        after = [a for s in opt.state.values() for a in s.values()]
        assert all(np.array_equal(x, y) for x, y in zip(before, after)) and opt.step_count == 2
        return
    # Loaded: truncation can never load, a change inside the buffers always does, and either way the state is
    # now exactly the bytes' buffers.
    assert cut == 0
    data = lambda b: b[8 + int.from_bytes(b[:8], "little"):]
    assert data(opt.checkpoint_bytes()) == data(bad)
    header_end = 8 + int.from_bytes(good[:8], "little")
    if position % len(good) >= header_end:
        assert opt.checkpoint_bytes() == bad and opt.step_count == 1


@SETTINGS
@given(position=st.integers(0, 10**6), value=st.integers(0, 255))
def test_a_change_inside_the_buffers_always_loads(position, value):
    params = [np.linspace(-1, 1, 9, dtype=np.float32)]
    opt = adamcore.RMSprop(params, momentum=0.9, centered=True)
    opt.step([np.ones(9, np.float32)])
    good = bytearray(opt.checkpoint_bytes())
    header_end = 8 + int.from_bytes(good[:8], "little")
    good[header_end + position % (len(good) - header_end)] = value
    opt.load_bytes(bytes(good))
    assert opt.checkpoint_bytes() == bytes(good)
