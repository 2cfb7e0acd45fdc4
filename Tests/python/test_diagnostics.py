"""Issue 7: step statistics against independently computed values, the Proposition 1 ratio, and advice."""
import math
import warnings

import adamcore
import numpy as np
import pytest

from reference import Problem


def prop1(b1, b2):
    return math.sqrt(b2) * (1 - b1) / math.sqrt((1 - b2) * (b2 - b1 * b1))


def expected_figures(before, after, grads, m, v, lr, b1, b2, eps, t):
    """The figures from their definitions, in float64, from the arrays before and after one step."""
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    m, v = np.concatenate(m).astype(np.float64), np.concatenate(v).astype(np.float64)
    denom = np.sqrt(v / bc2) + eps
    step = np.concatenate(after).astype(np.float64) - np.concatenate(before).astype(np.float64)
    g = np.concatenate(grads)
    return dict(count=len(m), nonfinite_grads=int((~np.isfinite(g)).sum()),
                max_step_over_lr=np.max(np.abs(m / bc1 / denom)), min_effective_lr=np.min(lr / denom),
                max_effective_lr=np.max(lr / denom), mean_effective_lr=np.mean(lr / denom),
                m_norm=np.linalg.norm(m), v_norm=np.linalg.norm(v), step_norm=np.linalg.norm(step))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_statistics_match_their_definitions(dtype, threads):
    adamcore.set_num_threads(threads)
    try:
        problem = Problem([70000, 33, 1], seed=3)     # one tensor large enough for the thread split, a tail, one element
        params = [x.astype(dtype) for x in problem.initial]
        lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
        opt = adamcore.Adam(params, lr=lr, betas=(b1, b2), eps=eps)
        opt.stats = True
        for t in range(1, 31):
            grads = problem.grads(t, dtype)
            before = [p.copy() for p in params]
            opt.step(grads)
            m = [opt.state[i]["exp_avg"] for i in range(3)]
            v = [opt.state[i]["exp_avg_sq"] for i in range(3)]
            want = expected_figures(before, params, grads, m, v, lr, b1, b2, eps, t)
            got = opt.last_stats
            assert got.step == t and got.count == want["count"] and got.nonfinite_grads == 0
            assert got.step_bound == pytest.approx(prop1(b1, b2), rel=1e-12)
            # Kernel arithmetic is in the dtype; 1e-5 relative covers float32 rounding of each element's figure and
            # of the blocked sums (each term is rounded once, sums are float lanes flushed to double per 1024).
            rel = 1e-5 if dtype == np.float32 else 1e-12
            # The float32 mean effective lr sums the hardware's reciprocal estimate (each term within 1.5 * 2^-12).
            mean_rel = 4e-4 if dtype == np.float32 else rel
            for key, value in want.items():
                tolerance = mean_rel if key == "mean_effective_lr" else rel
                assert getattr(got, key) == pytest.approx(value, rel=tolerance), (key, t)
            # Per tensor: the figures of tensor 1 alone.
            one = expected_figures([before[1]], [params[1]], [grads[1]], [m[1]], [v[1]], lr, b1, b2, eps, t)
            for key, value in one.items():
                tolerance = mean_rel if key == "mean_effective_lr" else rel
                assert getattr(got.tensors[1], key) == pytest.approx(value, rel=tolerance), (key, t)
    finally:
        adamcore.set_num_threads(0)


def test_statistics_do_not_change_a_bit_and_count_nonfinite_values():
    problem = Problem([5000, 17], seed=8)
    plain = [x.astype(np.float32) for x in problem.initial]
    measured = [x.astype(np.float32) for x in problem.initial]
    a, b = adamcore.AdaFix(plain, lr=1e-2, next_gradient=True), adamcore.AdaFix(measured, lr=1e-2, next_gradient=True)
    b.stats = True
    frozen = 0
    for t in range(1, 80):
        grads = problem.smooth_grads(t, np.float32)
        a.step(grads)
        b.step(grads)
        frozen += b.last_stats.adafix_v_frozen
        assert b.last_stats.lipschitz == b.lipschitz
        assert b.last_stats.adafix_v_frozen == (not b.v_updated)
    assert all(np.array_equal(x, y) for x, y in zip(plain, measured))
    assert frozen > 0, "the test should cover frozen steps"
    # (AdaFix refuses a step whose Lipschitz ratio is NaN, so count non-finite values with Adam.)
    c = adamcore.Adam([x.astype(np.float32) for x in problem.initial])
    c.stats = True
    grads = problem.grads(99, np.float32)
    grads[0][[3, 4999]] = [np.nan, np.inf]     # one in the body, one in the SIMD tail
    grads[1][16] = -np.inf
    c.step(grads)
    assert c.last_stats.nonfinite_grads == 3 and c.last_stats.tensors[0].nonfinite_grads == 2
    with pytest.raises(adamcore.AdamCoreError):
        adamcore.SGD([np.zeros(3, np.float32)]).stats = True


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99), (0.95, 0.9999)])
def test_proposition_1_ratio_never_exceeds_1_and_the_extremal_sequence_reaches_it(betas):
    b1, b2 = betas
    rng = np.random.default_rng(1)
    # Adversarial: 64 independent elements with gradient sequences mixing scales over 12 orders, sign flips,
    # bursts after silence, and geometric ramps; eps tiny so only the bound limits the ratio.
    n = 64
    w = np.zeros(n)
    opt = adamcore.Adam([w], lr=1.0, betas=betas, eps=1e-300)
    opt.stats = True
    worst = 0.0
    for t in range(1, 400):
        scale = 10.0 ** rng.uniform(-6, 6, n)
        g = scale * rng.choice([-1.0, 1.0], n) * (rng.random(n) < 0.7)
        g[:8] = (b1 / b2) ** (-t % 50) * (t % 50 > 10)           # bursts shaped like the extremal sequence
        opt.step([g])
        worst = max(worst, opt.last_stats.step_to_bound)
    assert worst <= 1.0 + 1e-12      # the bound is exact; the figure carries a few float64 roundings
    # Extremal (seed 000's proof): zeros, then g_{t-i} proportional to (b1/b2)^i; without bias correction.
    w = np.zeros(1)
    opt = adamcore.Adam([w], lr=1.0, betas=betas, eps=1e-300, bias_correction=False)
    opt.stats = True
    steps = 4000
    for t in range(1, steps + 1):
        opt.step([np.array([(b2 / b1) ** (t - steps) if b1 > 0 else float(t == steps)])])
    ratio = opt.last_stats.step_to_bound
    assert 0.999 < ratio <= 1.0 + 1e-12, ratio


def expected_advice(b1, b2, lr, eps, dtype):
    """Which advisories should fire, from the seeds' conditions written out independently."""
    codes = set()
    if b1 * b1 < b2:
        codes |= {"max_step", "flat_crossing"}
    if b1 >= math.sqrt(b2):
        codes.add("beta1_above_sqrt_beta2")
    if b2 < 0.99:
        codes.add("small_beta2")
    a, b = (1 - b2) / lr, (1 - b1) / lr
    codes.add("spike_regime" if b / a >= 10 else "divergence_regime" if b / a <= 0.1 else "oscillation_regime")
    smallest_normal = {"float16": 2 ** -14, "bfloat16": 2 ** -126, "float32": 2 ** -126}[dtype]
    if 0 < eps < smallest_normal:
        codes.add("eps_underflow")
    return codes


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_each_advisory_fires_exactly_when_it_should(dtype):
    for b1 in (0.0, 0.5, 0.9, 0.95, 0.99, 0.999):
        for b2 in (0.5, 0.9, 0.95, 0.99, 0.999, 0.9999):
            for lr in (1e-4, 1e-3, 1e-2, 0.3):
                for eps in (1e-8, 1e-6, 1e-3, 1e-40):
                    got = adamcore.advise("adam", lr=lr, betas=(b1, b2), eps=eps, dtype=dtype)
                    assert {a.code for a in got} == expected_advice(b1, b2, lr, eps, dtype), (b1, b2, lr, eps)
                    for a in got:
                        if a.code == "max_step":
                            assert a.value == pytest.approx(prop1(b1, b2))
                        if a.code in ("beta1_above_sqrt_beta2",) or (a.code == "small_beta2" and b2 < 0.9):
                            assert a.severity == "warning"
    assert adamcore.advise("adam")[0].value == pytest.approx(7.2703, abs=1e-4)
    assert adamcore.advise("adam")[1].value == pytest.approx(73.032, abs=1e-3)
    assert adamcore.advise("sgd") == []


def test_construction_warns_once_with_our_category():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adamcore.Adam([np.zeros(3, np.float32)], betas=(0.99, 0.9))
        adamcore.Adam([np.zeros(3, np.float32)])                       # defaults: nothing at warning level
    assert [w.category for w in caught] == [adamcore.AdamCoreAdvisory]
    assert "beta1_above_sqrt_beta2" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", adamcore.AdamCoreAdvisory)
        adamcore.Adam([np.zeros(3, np.float32)], betas=(0.99, 0.9))


def test_statistics_every_kth_step_and_identical_bits_across_thread_counts():
    problem = Problem([100000, 7], seed=4)
    runs = []
    for threads in (1, 2):
        adamcore.set_num_threads(threads)
        try:
            params = [x.astype(np.float32) for x in problem.initial]
            opt = adamcore.AdamW(params, lr=1e-2)
            opt.stats = 5
            seen = []
            for t in range(1, 13):
                opt.step(problem.grads(t, np.float32))
                seen.append(opt.last_stats.step)
            runs.append(opt.last_stats)
        finally:
            adamcore.set_num_threads(0)
        assert seen == [0, 0, 0, 0, 5, 5, 5, 5, 5, 10, 10, 10]
    assert runs[0] == runs[1], "the figures must not depend on the thread split"


def test_the_core_returns_statistics_by_field_name():
    """_core.get_stats gives a named struct sequence whose fields are StepStats' own, in its order."""
    import dataclasses
    p = np.linspace(-1, 1, 40, dtype=np.float32)
    opt = adamcore.Adam([p], lr=1e-2)
    opt.stats = True
    opt.step([np.full(40, 0.5, dtype=np.float32)])
    fields = opt._core.get_stats(-1)
    assert type(fields) is adamcore._core.StepStatsFields
    names = [f.name for f in dataclasses.fields(adamcore.StepStats) if f.name != "tensors"]
    assert list(type(fields).__match_args__) == names
    assert fields.step == 1 and fields.count == 40 and fields.nonfinite_grads == 0
    assert fields.max_step_over_lr == pytest.approx(1, rel=1e-5)  # |m_hat / sqrt(v_hat)| = 1 on the first step
    assert opt.last_stats.step_norm == fields.step_norm > 0
