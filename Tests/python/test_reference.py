"""Every optimizer and option, float32 and float64, two param groups of odd sizes, 1000 steps, against float64."""
import adamcore
import numpy as np
import pytest

from reference import Problem, RefAdagrad, RefAdam, RefRMSprop, RefSGD, assert_close

CASES = [
    ("adam", adamcore.Adam, RefAdam, dict(lr=1e-2)),
    ("adam eps l2", adamcore.Adam, RefAdam, dict(lr=1e-2, eps=1e-3, weight_decay=0.1)),
    ("adam maximize betas", adamcore.Adam, RefAdam, dict(lr=1e-2, betas=(0.5, 0.9), maximize=True)),
    ("adam eps_root", adamcore.Adam, RefAdam, dict(lr=1e-2, eps_root=1e-4)),
    ("adam no bias correction", adamcore.Adam, RefAdam, dict(lr=1e-2, bias_correction=False)),
    ("amsgrad", adamcore.Adam, RefAdam, dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    ("amsgrad optax", adamcore.Adam, RefAdam, dict(lr=1e-2, amsgrad=True, amsgrad_optax_order=True, eps_root=1e-4)),
    ("adamw", adamcore.AdamW, RefAdam, dict(lr=1e-2, weight_decay=0.1)),
    ("adamw amsgrad maximize", adamcore.AdamW, RefAdam, dict(lr=1e-2, amsgrad=True, maximize=True)),
    ("sgd", adamcore.SGD, RefSGD, dict(lr=1e-2)),
    ("sgd momentum dampening l2", adamcore.SGD, RefSGD, dict(lr=1e-2, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("sgd nesterov maximize", adamcore.SGD, RefSGD, dict(lr=1e-2, momentum=0.9, nesterov=True, maximize=True)),
    ("rmsprop", adamcore.RMSprop, RefRMSprop, dict()),
    # Centered RMSprop divides by sqrt(E[g^2] - E[g]^2): with a nearly constant gradient (e.g. dominated by weight
    # decay) that difference cancels and amplifies rounding in any implementation, so it is tested without L2.
    ("rmsprop centered momentum", adamcore.RMSprop, RefRMSprop, dict(centered=True, momentum=0.5)),
    ("rmsprop momentum maximize", adamcore.RMSprop, RefRMSprop, dict(alpha=0.9, momentum=0.9, maximize=True)),
    # L2 with a damped normaliser. (With momentum and L2 dominating a tiny gradient, RMSprop oscillates around 0 as
    # sign descent, seed 000's valley regime, where any change of rounding changes the trajectory.)
    ("rmsprop eps l2", adamcore.RMSprop, RefRMSprop, dict(eps=1e-3, weight_decay=0.1)),
    ("adagrad", adamcore.Adagrad, RefAdagrad, dict()),
    ("adagrad decay init l2 maximize", adamcore.Adagrad, RefAdagrad,
     dict(lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.1, maximize=True)),
]
STEPS = 1000


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,cls,ref,kwargs", CASES, ids=[c[0] for c in CASES])
def test_matches_float64_reference(name, cls, ref, kwargs, dtype):
    problem = Problem([37, 1, 100], seed=len(name))
    params = [x.astype(dtype) for x in problem.initial]
    # Group 2 gets its own learning rate, as torch's param groups allow.
    lr2 = kwargs.get("lr", cls.__init__.__defaults__[0]) * 0.5
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": lr2}], **kwargs)
    decoupled = cls is adamcore.AdamW
    if decoupled:
        kwargs = {"weight_decay": 1e-2, **kwargs}  # AdamW's default
    refs = [ref(p.astype(np.float64), decoupled=decoupled, **kwargs) for p in params[:2]]
    refs.append(ref(params[2].astype(np.float64), decoupled=decoupled, **{**kwargs, "lr": lr2}))
    for t in range(1, STEPS + 1):
        grads = problem.grads(t, dtype)
        opt.step(grads)
        for r, g in zip(refs, grads):
            r.step(g.astype(np.float64), t)
    for i, (p, r) in enumerate(zip(params, refs)):
        assert_close(p, r.p, STEPS, dtype, f"{name} param {i}")
        assert set(opt.state[i]) == set(r.state()), f"{name}: state slots"
        for slot, value in r.state().items():
            assert_close(opt.state[i][slot], value, STEPS, dtype, f"{name} {slot} {i}")
    assert opt.step_count == STEPS


@pytest.mark.parametrize("next_gradient", [False, True], ids=["exact", "next-gradient"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_adafix_matches_its_reference(next_gradient, dtype):
    """Seed 001, Algorithm 1 over two tensors: one global gate max|g| >= L*lr, L from ||g' - g|| / ||dx||. g' is the
    gradient of a loss with curvature 30 along the step, so L = 30 and the gate (threshold 0.3) opens early and
    closes as the gradient envelope decays."""
    problem = Problem([37, 12], seed=99)
    params = [x.astype(dtype) for x in problem.initial]
    opt = adamcore.AdaFix(params, lr=1e-2, next_gradient=next_gradient)
    refs = [RefAdam(p.astype(np.float64), lr=1e-2) for p in params]
    lipschitz, previous, last_norm, opened = 0.0, None, None, 0
    for t in range(1, 1001):
        # The next-gradient estimate needs gradients that change smoothly from step to step, as a real loss's do.
        grads = problem.smooth_grads(t, dtype) if next_gradient else problem.grads(t, dtype)
        g64 = [g.astype(np.float64) for g in grads]
        if next_gradient and previous is not None and last_norm > 0:
            diff = sum(np.sum((g - h) ** 2) for g, h in zip(g64, previous))
            lipschitz = max(lipschitz, np.sqrt(diff / last_norm))
        update = max(np.max(np.abs(g)) for g in g64) >= lipschitz * 1e-2
        opened += update
        before = [p.copy() for p in params]
        new_grads = lambda: [(g + 30 * (p.astype(np.float64) - b.astype(np.float64))).astype(dtype)
                             for g, p, b in zip(grads, params, before)]
        opt.step(grads, grad_fn=None if next_gradient else new_grads)
        assert opt.v_updated == update, f"step {t}"
        ref_before = [r.p.copy() for r in refs]
        for r, g in zip(refs, g64):
            r.step(g, t, update_v=update)
        last_norm = sum(np.sum((r.p - b) ** 2) for r, b in zip(refs, ref_before))
        if not next_gradient and last_norm > 0:
            fresh = [(g + 30 * (r.p - b)) for g, r, b in zip(g64, refs, ref_before)]
            diff = sum(np.sum((f - g) ** 2) for f, g in zip(fresh, g64))
            lipschitz = max(lipschitz, np.sqrt(diff / last_norm))
        previous = g64
    assert 10 < opened < 990, "the problem must exercise both gate decisions"
    assert opt.lipschitz == pytest.approx(lipschitz, rel=1e-3)
    for i, (p, r) in enumerate(zip(params, refs)):
        assert_close(p, r.p, 1000, dtype, f"adafix param {i}")
