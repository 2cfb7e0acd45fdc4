"""adamcore.torch as a drop-in for torch.optim, specified against torch.optim itself.

Every test runs adamcore.torch.X ("ours") and torch.optim.X ("torch") side by side on identical models, gradients and
call sequences, and compares what torch did with what ours did; no expected value comes from reading torch's code.

With ADAMCORE_TORCH_SELFTEST=1 the module uses torch.optim for "ours" as well. Every test must pass that way: it
proves each test is a true statement of torch's behaviour (the scaffolding, the exception types, the state_dict
layout), so a failure in the normal run is adamcore's. The few places that branch on SELFTEST are adamcore's
documented deviations (bf16/fp16, capturable, differentiable): there the selftest branch pins torch's behaviour.

Tolerances: float32 rtol 1e-5 / atol 1e-6, float64 1e-10, over at most a few hundred steps.
"""
from __future__ import annotations

import collections
import copy
import math
import os
import pickle
import re
import warnings

import pytest
import torch
from torch.optim import lr_scheduler
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

SELFTEST = os.environ.get("ADAMCORE_TORCH_SELFTEST") == "1"
if SELFTEST:
    ours = torch.optim
else:
    import adamcore.torch as ours  # noqa: E402

NAMES = ["Adam", "AdamW", "SGD", "RMSprop", "Adagrad"]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-10)}

# One configuration per class that creates every kind of state the class has.
BASIC = {
    "Adam": dict(lr=1e-2, amsgrad=True, weight_decay=0.01),
    "AdamW": dict(lr=1e-2, weight_decay=0.1),
    "SGD": dict(lr=1e-2, momentum=0.9, weight_decay=0.01),
    "RMSprop": dict(lr=1e-3, momentum=0.5, centered=True),
    "Adagrad": dict(lr=5e-2, lr_decay=1e-3, initial_accumulator_value=0.1),
}
# Every state key per class under BASIC (used to zero/replace each one).
STATE_KEYS = {
    "Adam": ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
    "AdamW": ["step", "exp_avg", "exp_avg_sq"],
    "SGD": ["momentum_buffer"],
    "RMSprop": ["step", "square_avg", "momentum_buffer", "grad_avg"],
    "Adagrad": ["step", "sum"],
}


def O(name):  # noqa: E743 - ours
    return getattr(ours, name)


def T(name):
    return getattr(torch.optim, name)


# ---------------------------------------------------------------------------------------------------------------
# Models, data, gradients


def make_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)


_GRADS: dict = {}


def _fake_grad(shape, dtype, t, seed, i):
    key = (shape, dtype, t, seed, i)
    if key not in _GRADS:
        g = torch.Generator().manual_seed(seed * 7919 + t * 131 + i)
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        grad = z * 10.0 ** ((t * 7 + i * 3) % 4 - 2) + 0.5 * math.sin(0.1 * t + i)
        if t % 9 == 4 and grad.dim() > 0:
            grad.view(-1)[::2] = 0.0
        _GRADS[key] = grad.to(dtype)
    return _GRADS[key].clone()


def fake_grads(params, t, seed=0):
    """Deterministic gradients for step t: magnitudes 1e-2..1e1, a drifting mean, some exact zeros."""
    return [_fake_grad(tuple(p.shape), p.dtype, t, seed, i) for i, p in enumerate(params)]


def set_grads(params, t, seed=0, none=()):
    params = list(params)
    for i, (p, g) in enumerate(zip(params, fake_grads(params, t, seed))):
        p.grad = None if i in none else g


def batch(t, dtype=torch.float32, n=16):
    g = torch.Generator().manual_seed(1000 + t)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.stack([torch.sin(2 * x[:, 0]), x[:, 1] * x[:, 2], torch.cos(x[:, 3] - x[:, 4])], 1)
    return x.to(dtype), y.to(dtype)


def loss_of(model, t):
    x, y = batch(t, next(model.parameters()).dtype)
    return ((model(x) - y) ** 2).mean()


def pair(name, kwargs, dtype=torch.float32, seed=0, params=None):
    """(model, ours optimizer, model copy, torch optimizer); params(model) builds the params argument."""
    params = params or (lambda m: m.parameters())
    mo = make_model(seed, dtype)
    mt = copy.deepcopy(mo)
    oo = O(name)(params(mo), **copy.deepcopy(kwargs))
    ot = T(name)(params(mt), **copy.deepcopy(kwargs))
    return mo, oo, mt, ot


def open_loop(sides, steps, start=0, seed=0, none=lambda t: ()):
    """Step each (model, optimizer) with the same fake gradients."""
    for t in range(start, start + steps):
        for m, o in sides:
            set_grads(m.parameters(), t, seed, none(t))
            o.step()


# ---------------------------------------------------------------------------------------------------------------
# Comparisons


def assert_params_close(a, b, tol=None, what=""):
    a = list(a.parameters()) if isinstance(a, torch.nn.Module) else list(a)
    b = list(b.parameters()) if isinstance(b, torch.nn.Module) else list(b)
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        torch.testing.assert_close(x.detach(), y.detach(), **(tol or TOL[y.dtype]),
                                   msg=lambda m, i=i: f"{what} parameter {i}: {m}")


def assert_value_equal(a, b, what):
    if torch.is_tensor(b):
        assert torch.is_tensor(a), f"{what}: {type(a).__name__} where torch has a Tensor"
        assert (a.dtype, tuple(a.shape)) == (b.dtype, tuple(b.shape)), f"{what}: {a.dtype}{tuple(a.shape)} vs " \
                                                                       f"torch's {b.dtype}{tuple(b.shape)}"
        assert torch.equal(a, b), f"{what}: {a} vs torch's {b}"
    elif isinstance(b, (tuple, list)):
        assert isinstance(a, (tuple, list)) and len(a) == len(b), f"{what}: {a!r} vs torch's {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_value_equal(x, y, f"{what}[{i}]")
    elif b is None or isinstance(b, bool):
        assert a is b, f"{what}: {a!r} vs torch's {b!r}"
    else:
        assert not isinstance(a, bool) and a == b, f"{what}: {a!r} vs torch's {b!r}"


def assert_groups_equal(mine, theirs, packed=False):
    """param_groups (live, packed=False, params compared by count) or state_dict['param_groups'] (packed)."""
    assert len(mine) == len(theirs), f"{len(mine)} param groups vs torch's {len(theirs)}"
    for i, (go, gt) in enumerate(zip(mine, theirs)):
        assert set(go) == set(gt), f"group {i}: keys only in ours {sorted(set(go) - set(gt))}, " \
                                   f"only in torch's {sorted(set(gt) - set(go))}"
        for key, value in gt.items():
            if key == "params":
                if packed:
                    assert list(go["params"]) == list(value), f"group {i} params {go['params']} vs {value}"
                else:
                    assert len(go["params"]) == len(value)
            else:
                assert_value_equal(go[key], value, f"group {i} {key!r}")


def assert_state_entry_close(so, st, tol, what):
    assert set(so) == set(st), f"{what}: state keys {sorted(so)} vs torch's {sorted(st)}"
    for key, b in st.items():
        a = so[key]
        if torch.is_tensor(b):
            assert torch.is_tensor(a), f"{what} {key!r}: {type(a).__name__} where torch has a Tensor"
            assert (a.dtype, tuple(a.shape), a.device) == (b.dtype, tuple(b.shape), b.device), \
                f"{what} {key!r}: {a.dtype}{tuple(a.shape)}@{a.device} vs torch's {b.dtype}{tuple(b.shape)}@{b.device}"
            if key == "step":
                assert float(a) == float(b), f"{what} step {float(a)} vs torch's {float(b)}"
            else:
                torch.testing.assert_close(a, b, **(tol or TOL.get(b.dtype, {})),
                                           msg=lambda m, key=key: f"{what} {key!r}: {m}")
        else:
            assert_value_equal(a, b, f"{what} {key!r}")


def assert_state_dict_like(sd_o, sd_t, tol=None):
    """The same structure as torch's state_dict (keys, int param ids, state keys, dtypes, shapes), close values."""
    assert set(sd_o) == set(sd_t), f"state_dict keys {sorted(sd_o)} vs torch's {sorted(sd_t)}"
    assert set(sd_o["state"]) == set(sd_t["state"]), \
        f"state ids {sorted(sd_o['state'])} vs torch's {sorted(sd_t['state'])}"
    assert all(isinstance(k, int) for k in sd_o["state"])
    for k, st in sd_t["state"].items():
        assert_state_entry_close(sd_o["state"][k], st, tol, f"state[{k}]")
    assert_groups_equal(sd_o["param_groups"], sd_t["param_groups"], packed=True)


def assert_optimizers_alike(oo, ot, tol=None):
    assert_state_dict_like(copy.deepcopy(oo.state_dict()), copy.deepcopy(ot.state_dict()), tol)
    assert_groups_equal(oo.param_groups, ot.param_groups)


def raised_type(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - we want the type torch raises
        return type(e)
    return None


# ---------------------------------------------------------------------------------------------------------------
# Construction


@pytest.mark.parametrize("name", NAMES)
def test_constructs_like_torch(name):
    mo, oo, mt, ot = pair(name, {})
    assert isinstance(oo, torch.optim.Optimizer)
    assert type(oo).__name__ == name
    assert oo.defaults == ot.defaults
    assert_groups_equal(oo.param_groups, ot.param_groups)
    for po, pm in zip(oo.param_groups[0]["params"], mo.parameters()):
        assert po is pm  # the model's own parameters, not copies
    assert len(oo.state) == len(ot.state)  # torch creates state lazily (Adagrad: eagerly, at construction)
    assert_optimizers_alike(oo, ot)


FLAG_CASES = [(n, f) for n in NAMES for f in (dict(foreach=False), dict(foreach=True), dict(fused=False),
                                              dict(fused=True), dict(foreach=None, fused=None))
              if not (n == "RMSprop" and "fused" in f)]


@pytest.mark.parametrize("name,flags", FLAG_CASES, ids=[f"{n}-{f}" for n, f in FLAG_CASES])
def test_foreach_and_fused_are_accepted_and_kept(name, flags):
    kwargs = {**BASIC[name], **flags}
    mo, oo, mt, ot = pair(name, kwargs)
    assert oo.defaults == ot.defaults
    assert_groups_equal(oo.param_groups, ot.param_groups)
    open_loop([(mo, oo), (mt, ot)], 20)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


UNSUPPORTED = [(n, f) for n in NAMES for f in ("capturable", "differentiable") if not (
    f == "capturable" and n in ("SGD", "Adagrad"))]


@pytest.mark.parametrize("name,flag", UNSUPPORTED, ids=[f"{n}-{f}" for n, f in UNSUPPORTED])
def test_capturable_and_differentiable_are_refused_not_ignored(name, flag):
    params = [torch.randn(3, requires_grad=True)]
    if SELFTEST:  # torch accepts the flag at construction and keeps it (it fails later, at step, on CPU leaves)
        opt = T(name)(params, **{flag: True})
        assert opt.param_groups[0][flag] is True
        return
    with pytest.raises((ValueError, RuntimeError), match=flag):
        O(name)(params, **{flag: True})


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_parameters_step_in_place(name, dtype):
    """16-bit parameters beside float32 ones: stepped in place in their own dtype, as torch steps them
    (adamcore's numbers against torch's: test_mixed_precision.py)."""
    opt = getattr(ours, name)([torch.randn(3, requires_grad=True), torch.randn(4, dtype=dtype, requires_grad=True)],
                              **BASIC[name])
    p = opt.param_groups[0]["params"][1]
    before = p.detach().clone()
    p.grad = torch.ones_like(p)
    opt.step()
    assert p.dtype == dtype and not torch.equal(p.detach(), before)


# ---------------------------------------------------------------------------------------------------------------
# 1. Parity over steps

PARITY = [
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, maximize=True, weight_decay=0.1)),
    ("Adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, decoupled_weight_decay=True)),
    ("Adam", dict(lr=torch.tensor(1e-2), betas=(torch.tensor(0.9), torch.tensor(0.999)))),
    ("Adam", dict(lr=1e-2, foreach=True)),
    ("Adam", dict(lr=1e-2, fused=True, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.3, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, maximize=True, weight_decay=0)),
    ("AdamW", dict(lr=torch.tensor(5e-3), weight_decay=0.1)),
    ("SGD", dict(lr=1e-2)),
    ("SGD", dict(lr=1e-2, momentum=0.9)),
    ("SGD", dict(lr=1e-2, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=1e-2, momentum=0.5, maximize=True)),
    ("SGD", dict(lr=1e-2, momentum=0.9, fused=True)),
    ("SGD", dict(lr=torch.tensor(1e-2), momentum=0.9)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=1e-3, centered=True)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.9)),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=1e-3, momentum=0.5, foreach=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=5e-2, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("Adagrad", dict(weight_decay=0.1, maximize=True, eps=1e-6)),
    ("Adagrad", dict(lr=5e-2, fused=True)),
]


def _id(name, kwargs):
    def show(v):
        return "T" if torch.is_tensor(v) or (isinstance(v, tuple) and torch.is_tensor(v[0])) else v
    return name + "-" + ",".join(f"{k}={show(v)}" for k, v in kwargs.items())


# float32 for every configuration, float64 for the first (and the richest) few of each class
PARITY_CASES = [(n, k, torch.float32) for n, k in PARITY] + [
    (*PARITY[i], torch.float64) for i in (1, 3, 8, 13, 14, 20, 21, 24)]


@pytest.mark.parametrize("name,kwargs,dtype", PARITY_CASES,
                         ids=[_id(n, k) + ("-f64" if d == torch.float64 else "-f32") for n, k, d in PARITY_CASES])
def test_parity_over_200_steps(name, kwargs, dtype):
    mo, oo, mt, ot = pair(name, kwargs, dtype)
    open_loop([(mo, oo), (mt, ot)], 1)
    assert_params_close(mo, mt, what="after step 1")
    open_loop([(mo, oo), (mt, ot)], 199, start=1)
    assert_params_close(mo, mt, what="after step 200")
    assert_optimizers_alike(oo, ot)


@pytest.mark.parametrize("name", NAMES)
def test_trains_a_model_like_torch_closed_loop(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    for t in range(100):
        for m, o in ((mo, oo), (mt, ot)):
            o.zero_grad()
            loss_of(m, t).backward()
            o.step()
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 2. Gradients that are None, 3. zero gradients and per-group hyperparameters


@pytest.mark.parametrize("name", NAMES)
def test_params_without_grad_are_skipped_like_torch(name):
    """Parameter 3 never has a gradient (frozen), parameter 2 only on odd steps (a conditional branch)."""
    mo, oo, mt, ot = pair(name, BASIC[name])
    frozen = list(mo.parameters())[3].detach().clone()
    frozen_state = copy.deepcopy(dict(oo.state.get(list(mo.parameters())[3], {})))

    def none(t):
        return (3,) if t % 2 else (2, 3)

    open_loop([(mo, oo), (mt, ot)], 1, none=none)
    assert_optimizers_alike(oo, ot)  # after a first step in which parameter 2 had no gradient
    open_loop([(mo, oo), (mt, ot)], 59, start=1, none=none)
    p3 = list(mo.parameters())[3]
    assert torch.equal(p3.detach(), frozen)
    assert (p3 in oo.state) == (list(mt.parameters())[3] in ot.state)
    assert_state_entry_close(dict(oo.state.get(p3, {})), frozen_state, None, "frozen parameter")
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


@pytest.mark.parametrize("name", NAMES)
def test_all_grads_none_step_is_a_noop_like_torch(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 5)
    before = copy.deepcopy(oo.state_dict())
    oo.zero_grad()
    ot.zero_grad()
    assert all(p.grad is None for p in mo.parameters())
    oo.step()
    ot.step()
    assert_state_dict_like(copy.deepcopy(oo.state_dict()), before, tol=dict(rtol=0, atol=0))
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


@pytest.mark.parametrize("name", NAMES)
def test_zero_grads_step_like_torch(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 5)
    for _ in range(10):
        for m, o in ((mo, oo), (mt, ot)):
            o.zero_grad(set_to_none=False)
            assert all(p.grad is not None and not p.grad.any() for p in m.parameters())
            o.step()
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


GROUP_EXTRAS = {"Adam": dict(betas=(0.5, 0.9)), "AdamW": dict(eps=1e-3), "SGD": dict(momentum=0.5, dampening=0.1),
                "RMSprop": dict(alpha=0.9), "Adagrad": dict(lr_decay=0.05)}


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_with_their_own_hyperparameters(name):
    def groups(m):
        return [{"params": [m[0].weight, m[0].bias], "lr": 0.02, "weight_decay": 0.1, **GROUP_EXTRAS[name]},
                {"params": [m[2].weight]},
                {"params": [m[2].bias], "lr": 0.0}]

    mo, oo, mt, ot = pair(name, BASIC[name], params=groups)
    assert_groups_equal(oo.param_groups, ot.param_groups)
    bias = mo[2].bias.detach().clone()
    open_loop([(mo, oo), (mt, ot)], 100)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)
    assert torch.equal(mo[2].bias.detach(), bias) == torch.equal(mt[2].bias.detach(), bias)  # the lr=0 group


# ---------------------------------------------------------------------------------------------------------------
# 4. add_param_group


@pytest.mark.parametrize("name", NAMES)
def test_add_param_group_after_steps(name):
    mo, oo, mt, ot = pair(name, BASIC[name], params=lambda m: m[0].parameters())
    open_loop([(mo, oo), (mt, ot)], 30)
    oo.add_param_group({"params": list(mo[2].parameters()), "lr": 0.005})
    ot.add_param_group({"params": list(mt[2].parameters()), "lr": 0.005})
    assert_groups_equal(oo.param_groups, ot.param_groups)
    assert_optimizers_alike(oo, ot)
    open_loop([(mo, oo), (mt, ot)], 30, start=30)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)
    for opt, model in ((oo, mo), (ot, mt)):
        with pytest.raises(ValueError):
            opt.add_param_group({"params": [model[0].weight]})
        with pytest.raises(TypeError):
            opt.add_param_group([model[0].weight])


def test_adagrad_state_of_later_params_uses_the_default_initial_accumulator_value():
    """torch's Adagrad fills 'sum' with the constructor's initial_accumulator_value, ignoring a group's own value
    (at construction and for a group added later, whose state is created lazily at its first step)."""
    def groups(m):
        return [{"params": list(m[0].parameters()), "initial_accumulator_value": 0.7}]

    mo, oo, mt, ot = pair("Adagrad", dict(lr=0.05, initial_accumulator_value=0.2), params=groups)
    assert_optimizers_alike(oo, ot)
    oo.add_param_group({"params": list(mo[2].parameters()), "initial_accumulator_value": 0.9})
    ot.add_param_group({"params": list(mt[2].parameters()), "initial_accumulator_value": 0.9})
    assert_optimizers_alike(oo, ot)
    open_loop([(mo, oo), (mt, ot)], 20)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 5. LR schedulers and edits of param groups

def _warmup(e):
    return min(1.0, (e + 1) / 10)


SCHEDULES = [
    ("SGD", dict(lr=0.1, momentum=0.9), lambda o: lr_scheduler.StepLR(o, step_size=20, gamma=0.5)),
    ("Adam", dict(lr=0.01), lambda o: lr_scheduler.StepLR(o, step_size=15, gamma=0.3)),
    ("AdamW", dict(lr=0.01), lambda o: lr_scheduler.LambdaLR(o, _warmup)),
    ("RMSprop", dict(lr=0.01, momentum=0.5), lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=40, eta_min=1e-4)),
    ("Adagrad", dict(lr=0.1), lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=30)),
    ("Adam", dict(lr=0.01), lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=80)),
    ("AdamW", dict(lr=0.01, amsgrad=True),
     lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=80, base_momentum=0.6, max_momentum=0.95)),
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True),
     lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=80)),
    ("RMSprop", dict(lr=0.01, momentum=0.9), lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=80)),
    ("Adam", dict(lr=0.01), lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=10), lr_scheduler.CosineAnnealingLR(o, T_max=70)],
        milestones=[10])),
]


@pytest.mark.parametrize("case", range(len(SCHEDULES)),
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(SCHEDULES)])
def test_lr_schedulers_like_torch(case):
    name, kwargs, make = SCHEDULES[case]
    mo, oo, mt, ot = pair(name, kwargs)
    so, st = make(oo), make(ot)
    assert_groups_equal(oo.param_groups, ot.param_groups)  # initial_lr, max_lr, base_momentum, ...
    for t in range(80):
        for m, o, s in ((mo, oo, so), (mt, ot, st)):
            set_grads(m.parameters(), t)
            o.step()
            s.step()
        assert so.get_last_lr() == st.get_last_lr()
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


@pytest.mark.parametrize("name", NAMES)
def test_tensor_lr_updated_in_place_by_a_scheduler(name):
    kwargs = {**BASIC[name], "lr": torch.tensor(0.01)}
    mo, oo, mt, ot = pair(name, kwargs)
    lr_o, lr_t = oo.param_groups[0]["lr"], ot.param_groups[0]["lr"]
    assert torch.is_tensor(lr_o) and torch.is_tensor(lr_t)
    so = lr_scheduler.StepLR(oo, step_size=10, gamma=0.5)
    st = lr_scheduler.StepLR(ot, step_size=10, gamma=0.5)
    for t in range(40):
        for m, o, s in ((mo, oo, so), (mt, ot, st)):
            set_grads(m.parameters(), t)
            o.step()
            s.step()
    assert (oo.param_groups[0]["lr"] is lr_o) == (ot.param_groups[0]["lr"] is lr_t)
    assert float(lr_o) == float(lr_t)
    lr_o.fill_(0.05)  # and by hand
    lr_t.fill_(0.05)
    open_loop([(mo, oo), (mt, ot)], 10, start=40)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


def _edit(form, opt, name):
    g = opt.param_groups[0]
    if form == "setitem":
        g["lr"] = 0.25 * g["lr"]
    elif form == "ior":
        opt.param_groups[0] |= {"lr": 0.003, "weight_decay": 0.2}
    elif form == "update":
        g.update({"lr": 0.004, "eps": 1e-4} if name != "SGD" else {"lr": 0.004, "dampening": 0.5})
    elif form == "pop_setdefault":
        g.pop("lr")
        g.setdefault("lr", 0.002)
        g.pop("weight_decay")
        g.setdefault("weight_decay", 0.3)
    elif form == "replace_group":
        opt.param_groups[0] = {**g, "lr": 0.006}
    elif form == "class_specific":
        g.update({"Adam": dict(betas=(0.5, 0.9), maximize=True), "AdamW": dict(betas=(0.7, 0.95), eps=1e-3),
                  "SGD": dict(momentum=0.3, nesterov=False, maximize=True),
                  "RMSprop": dict(alpha=0.8, momentum=0.9, eps=1e-4), "Adagrad": dict(lr_decay=0.1, eps=1e-3)}[name])


EDITS = ["setitem", "ior", "update", "pop_setdefault", "replace_group", "class_specific"]


@pytest.mark.parametrize("form", EDITS)
@pytest.mark.parametrize("name", NAMES)
def test_param_group_edits_take_effect_like_torch(name, form):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 10)
    _edit(form, oo, name)
    _edit(form, ot, name)
    assert_groups_equal(oo.param_groups, ot.param_groups)
    open_loop([(mo, oo), (mt, ot)], 20, start=10)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 6. Per-parameter state resets


@pytest.mark.parametrize("name", NAMES)
def test_del_state_of_a_param_then_continue(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 15)
    del oo.state[mo[0].weight]
    del ot.state[mt[0].weight]
    assert (mo[0].weight in oo.state) == (mt[0].weight in ot.state)
    open_loop([(mo, oo), (mt, ot)], 1, start=15)
    assert_optimizers_alike(oo, ot)  # the state torch re-creates (step restarts)
    open_loop([(mo, oo), (mt, ot)], 14, start=16)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


RESETS = [(n, k, how) for n in NAMES for k in STATE_KEYS[n] for how in ("zero_", "assign")]


@pytest.mark.parametrize("name,key,how", RESETS, ids=[f"{n}-{k}-{h}" for n, k, h in RESETS])
def test_reset_one_state_tensor_then_continue(name, key, how):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 15)
    for opt, model in ((oo, mo), (ot, mt)):
        state = opt.state[model[2].weight]
        # RMSprop(centered): square_avg alone at 0 makes the variance negative (NaN); reset grad_avg with it
        for k in [key] + (["grad_avg"] if (name, key) == ("RMSprop", "square_avg") else []):
            if how == "zero_":
                state[k].zero_()
            else:
                state[k] = torch.zeros_like(state[k])
    assert_optimizers_alike(oo, ot)
    open_loop([(mo, oo), (mt, ot)], 15, start=15)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 7. Replacing the parameters of a group


@pytest.mark.parametrize("how", ["assign_list", "append"])
@pytest.mark.parametrize("name", NAMES)
def test_replacing_group_params(name, how):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 10)
    no, nt = make_model(seed=5), make_model(seed=5)
    for opt, new in ((oo, no), (ot, nt)):
        if how == "assign_list":
            opt.param_groups[0]["params"] = list(new.parameters())
        else:
            opt.param_groups[0]["params"].append(new[0].weight)
    old_o, old_t = [p.detach().clone() for p in mo.parameters()], [p.detach().clone() for p in mt.parameters()]
    for t in range(10, 25):
        for m, n, o in ((mo, no, oo), (mt, nt, ot)):
            set_grads(m.parameters(), t)
            set_grads(n.parameters(), t, seed=3)
            o.step()
    assert_params_close(no, nt)
    assert_params_close(mo, mt)
    if how == "assign_list":  # the old parameters left the optimizer: they must not move any more
        assert all(torch.equal(p.detach(), q) for p, q in zip(mo.parameters(), old_o))
        assert all(torch.equal(p.detach(), q) for p, q in zip(mt.parameters(), old_t))
    for pn, pt in zip(no.parameters(), nt.parameters()):
        assert (pn in oo.state) == (pt in ot.state)
        if pt in ot.state:
            assert_state_entry_close(oo.state[pn], ot.state[pt], None, "new parameter")
    assert_groups_equal(oo.param_groups, ot.param_groups)


# ---------------------------------------------------------------------------------------------------------------
# 8. Hooks


@pytest.mark.parametrize("name", NAMES)
def test_hooks_run_like_torch(name):
    def instrument(opt):
        log = []
        opt.register_step_pre_hook(lambda o, a, k: log.append(("step_pre", o is opt, len(a), a[0] is opt,
                                                                sorted(k))))
        opt.register_step_post_hook(lambda o, a, k: log.append(("step_post", o is opt, len(a), sorted(k))))
        opt.register_state_dict_pre_hook(lambda o: log.append(("sd_pre", o is opt)))
        opt.register_state_dict_pre_hook(lambda o: log.append(("sd_pre_first", o is opt)), prepend=True)

        def sd_post(o, sd):
            log.append(("sd_post", o is opt, sorted(sd)))
            sd["hooked"] = True

        def sd_post_replace(o, sd):
            log.append(("sd_post_replace", sorted(sd)))
            return {**sd, "replaced": 1}

        opt.register_state_dict_post_hook(sd_post)
        opt.register_state_dict_post_hook(sd_post_replace)

        def load_pre(o, sd):
            log.append(("load_pre", o is opt, sorted(sd)))
            sd = dict(sd)
            sd.pop("hooked", None)
            sd.pop("replaced", None)
            return sd

        opt.register_load_state_dict_pre_hook(load_pre)
        opt.register_load_state_dict_post_hook(lambda o: log.append(("load_post", o is opt)))
        removed = opt.register_step_post_hook(lambda o, a, k: log.append(("removed",)))
        removed.remove()
        return log

    mo, oo, mt, ot = pair(name, BASIC[name])
    lo, lt = instrument(oo), instrument(ot)
    glog = []
    handles = [register_optimizer_step_pre_hook(lambda o, a, k: glog.append(("gpre", type(o).__name__))),
               register_optimizer_step_post_hook(lambda o, a, k: glog.append(("gpost", type(o).__name__)))]
    try:
        for m, o in ((mo, oo), (mt, ot)):
            set_grads(m.parameters(), 0)
            o.step()

            def closure(m=m):
                return loss_of(m, 1)

            o.step(closure)
            o.step(closure=closure)
    finally:
        for h in handles:
            h.remove()
    sd_o, sd_t = oo.state_dict(), ot.state_dict()
    assert sorted(sd_o) == sorted(sd_t)
    oo.load_state_dict(copy.deepcopy(sd_o))
    ot.load_state_dict(copy.deepcopy(sd_t))
    assert lo == lt
    assert glog == [("gpre", name), ("gpost", name)] * 3 * 2
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 9. p.data = new tensor


@pytest.mark.parametrize("how", ["clone", "flat_view"])
@pytest.mark.parametrize("when", [0, 10])
@pytest.mark.parametrize("name", NAMES)
def test_param_data_replaced(name, when, how):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], when)
    for m in (mo, mt):
        params = list(m.parameters())
        if how == "clone":
            for p in params:
                p.data = p.data.clone() * 0.5
        else:  # as ZeroRedundancyOptimizer(parameters_as_bucket_view=True) does: views into one flat buffer
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            offset = 0
            for p in params:
                p.data = flat[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
    open_loop([(mo, oo), (mt, ot)], 20, start=when)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)
    if how == "flat_view":  # the parameters still are views of that buffer (the update was in place)
        params = list(mo.parameters())
        assert all(p.untyped_storage().data_ptr() == params[0].untyped_storage().data_ptr() for p in params)


# ---------------------------------------------------------------------------------------------------------------
# 10. state_dict


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_structure_like_torch(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    so, st = lr_scheduler.StepLR(oo, 3), lr_scheduler.StepLR(ot, 3)
    for t in range(5):
        for m, o, s in ((mo, oo, so), (mt, ot, st)):
            set_grads(m.parameters(), t)
            o.step()
            s.step()
    sd_o, sd_t = oo.state_dict(), ot.state_dict()
    assert type(sd_o) is type(sd_t)
    assert "initial_lr" in sd_o["param_groups"][0]
    assert_state_dict_like(copy.deepcopy(sd_o), copy.deepcopy(sd_t))
    for entry_o, entry_t in zip(sd_o["state"].values(), sd_t["state"].values()):
        if "step" in entry_t:  # a 0-d tensor of torch's scalar dtype on the CPU
            assert torch.is_tensor(entry_o["step"]) and entry_o["step"].shape == entry_t["step"].shape == ()
            assert entry_o["step"].dtype == entry_t["step"].dtype


@pytest.mark.parametrize("name", ["Adam", "RMSprop", "Adagrad"])
def test_step_dtype_follows_torch_default_dtype(name):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        mo, oo, mt, ot = pair(name, BASIC[name], dtype=torch.float32)
        open_loop([(mo, oo), (mt, ot)], 3)
        assert_optimizers_alike(oo, ot)
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_both_directions(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 15)
    other = {**BASIC[name], "lr": 0.123, "weight_decay": 0.5}
    m2, m3 = copy.deepcopy(mt), copy.deepcopy(mo)
    o2 = O(name)(m2.parameters(), **other)  # torch's state_dict into ours
    o2.load_state_dict(copy.deepcopy(ot.state_dict()))
    o3 = T(name)(m3.parameters(), **other)  # ours into torch
    o3.load_state_dict(copy.deepcopy(oo.state_dict()))
    assert_optimizers_alike(o2, ot)
    assert_optimizers_alike(o3, ot)
    open_loop([(mo, oo), (mt, ot), (m2, o2), (m3, o3)], 15, start=15)
    for m, o in ((mo, oo), (m2, o2), (m3, o3)):
        assert_params_close(m, mt)
        assert_optimizers_alike(o, ot)


@pytest.mark.parametrize("name", NAMES)
def test_scheduler_last_epoch_after_load(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    st = lr_scheduler.StepLR(ot, step_size=7, gamma=0.5)
    for t in range(20):
        set_grads(mt.parameters(), t)
        ot.step()
        st.step()
    saved = copy.deepcopy(ot.state_dict())
    resumed = []
    for mod in (ours, torch.optim):
        m = copy.deepcopy(mt)
        o = getattr(mod, name)(m.parameters(), **BASIC[name])
        o.load_state_dict(copy.deepcopy(saved))
        s = lr_scheduler.StepLR(o, step_size=7, gamma=0.5, last_epoch=st.last_epoch)
        resumed.append((m, o, s))
    (m_o, o_o, s_o), (m_t, o_t, s_t) = resumed
    assert_groups_equal(o_o.param_groups, o_t.param_groups)
    for t in range(20, 35):
        for m, o, s in resumed:
            set_grads(m.parameters(), t)
            o.step()
            s.step()
        assert s_o.get_last_lr() == s_t.get_last_lr()
    assert_params_close(m_o, m_t)
    assert_optimizers_alike(o_o, o_t)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_determinism(name):
    results = []
    for mod in (ours, torch.optim):
        m = make_model()
        o = getattr(mod, name)(m.parameters(), **BASIC[name])
        open_loop([(m, o)], 10)
        m2 = copy.deepcopy(m)
        o2 = getattr(mod, name)(m2.parameters(), **BASIC[name])
        o2.load_state_dict(copy.deepcopy(o.state_dict()))
        open_loop([(m, o), (m2, o2)], 10, start=10)
        assert_params_close(m2, m, tol=dict(rtol=0, atol=0))
        assert_state_dict_like(copy.deepcopy(o2.state_dict()), copy.deepcopy(o.state_dict()),
                               tol=dict(rtol=0, atol=0))
        results.append((m, o))
    assert_params_close(results[0][0], results[1][0])
    assert_optimizers_alike(results[0][1], results[1][1])


@pytest.mark.parametrize("name", NAMES)
def test_torch_save_load_round_trip(name, tmp_path):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 10)
    torch.save({"model": mo.state_dict(), "optimizer": oo.state_dict()}, tmp_path / "ours.pt")
    torch.save({"model": mt.state_dict(), "optimizer": ot.state_dict()}, tmp_path / "torch.pt")
    continued = []
    for src in ("ours.pt", "torch.pt"):
        for mod in (ours, torch.optim):
            ckpt = torch.load(tmp_path / src)  # weights_only=True, torch's default: plain tensors and containers
            m = make_model(seed=9)
            m.load_state_dict(ckpt["model"])
            o = getattr(mod, name)(m.parameters(), **BASIC[name])
            o.load_state_dict(ckpt["optimizer"])
            continued.append((m, o))
    open_loop([(mo, oo), (mt, ot)] + continued, 10, start=10)
    assert_params_close(mo, mt)
    for m, o in continued:
        assert_params_close(m, mt)
        assert_optimizers_alike(o, ot)


OLD_STYLES = ["int_step", "float_step", "missing_group_keys"]


@pytest.mark.parametrize("style", OLD_STYLES)
@pytest.mark.parametrize("name", NAMES)
def test_old_style_state_dict_loads_like_torch(name, style):
    m0 = make_model()
    o0 = T(name)(m0.parameters(), **BASIC[name])
    open_loop([(m0, o0)], 10)
    sd = copy.deepcopy(o0.state_dict())
    for entry in sd["state"].values():
        if "step" in entry and style != "missing_group_keys":
            entry["step"] = int(entry["step"]) if style == "int_step" else float(entry["step"])
    if style == "missing_group_keys":  # keys added to torch.optim after 1.x
        for g in sd["param_groups"]:
            for key in ("foreach", "fused", "capturable", "differentiable", "maximize", "decoupled_weight_decay"):
                g.pop(key, None)
    mo, mt = copy.deepcopy(m0), copy.deepcopy(m0)
    oo = O(name)(mo.parameters(), **BASIC[name])
    ot = T(name)(mt.parameters(), **BASIC[name])
    oo.load_state_dict(copy.deepcopy(sd))
    ot.load_state_dict(copy.deepcopy(sd))
    assert_optimizers_alike(oo, ot)
    open_loop([(mo, oo), (mt, ot)], 10, start=10)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 11. deepcopy and pickle


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", NAMES)
def test_copy_model_and_optimizer_together(name, how):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 10)
    if how == "deepcopy":
        (mo2, oo2), (mt2, ot2) = copy.deepcopy((mo, oo)), copy.deepcopy((mt, ot))
    else:
        (mo2, oo2), (mt2, ot2) = pickle.loads(pickle.dumps((mo, oo))), pickle.loads(pickle.dumps((mt, ot)))
    assert (oo2.param_groups[0]["params"][0] is mo2[0].weight) == (ot2.param_groups[0]["params"][0] is mt2[0].weight)
    assert_optimizers_alike(oo2, ot2)
    open_loop([(mo2, oo2), (mt2, ot2)], 10, start=10, seed=1)  # the copies and the originals diverge
    open_loop([(mo, oo), (mt, ot)], 10, start=10, seed=2)
    assert_params_close(mo2, mt2)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo2, ot2)
    assert_optimizers_alike(oo, ot)


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_optimizer_alone(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 10)
    oo2, ot2 = copy.deepcopy(oo), copy.deepcopy(ot)
    model_o, model_t = [p.detach().clone() for p in mo.parameters()], [p.detach().clone() for p in mt.parameters()]
    po, pt = oo2.param_groups[0]["params"], ot2.param_groups[0]["params"]
    assert (po[0] is mo[0].weight) == (pt[0] is mt[0].weight)
    for t in range(10, 20):
        for params, o in ((po, oo2), (pt, ot2)):
            set_grads(params, t)
            o.step()
    assert_params_close(po, pt)
    assert_optimizers_alike(oo2, ot2)
    assert all(torch.equal(a.detach(), b) for a, b in zip(mo.parameters(), model_o)) == \
        all(torch.equal(a.detach(), b) for a, b in zip(mt.parameters(), model_t))


# ---------------------------------------------------------------------------------------------------------------
# 12. 0-d parameters


@pytest.mark.parametrize("name", NAMES)
def test_zero_dim_parameter(name):
    def params():
        torch.manual_seed(3)
        return [torch.tensor(0.5, requires_grad=True), torch.randn(3, requires_grad=True)]

    po, pt = params(), params()
    oo, ot = O(name)(po, **BASIC[name]), T(name)(pt, **BASIC[name])
    for t in range(30):
        for ps, o in ((po, oo), (pt, ot)):
            set_grads(ps, t)
            o.step()
    assert po[0].shape == ()
    assert_params_close(po, pt)
    assert_optimizers_alike(oo, ot)
    for key, value in ot.state[pt[0]].items():
        assert oo.state[po[0]][key].shape == value.shape


# ---------------------------------------------------------------------------------------------------------------
# 13. Errors and warnings: the types torch raises


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_parameters_warn_like_torch(name):
    """torch warns (UserWarning) and constructs; it then steps the parameter twice per step. Ours must give the same
    warning; after it, stepping like torch, or refusing clearly (ValueError/RuntimeError naming the duplicate, at
    construction or at a step, with nothing half-done) are both accepted; stepping differently is not."""
    p_t = torch.ones(3, requires_grad=True)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        o_t = T(name)([p_t, p_t], **BASIC[name])
    p_o = torch.ones(3, requires_grad=True)
    refusal = None
    with pytest.warns(UserWarning, match="duplicate parameters"):
        try:
            o_o = O(name)([p_o, p_o], **BASIC[name])
        except (RuntimeError, ValueError) as e:
            refusal = e
    for t in range(3):
        p_t.grad = fake_grads([p_t], t)[0]
        o_t.step()
        if refusal is None:
            p_o.grad = fake_grads([p_o], t)[0]
            before = p_o.detach().clone()
            try:
                o_o.step()
            except (RuntimeError, ValueError) as e:
                refusal = e
                assert torch.equal(p_o.detach(), before)
    if refusal is not None:
        assert not SELFTEST
        assert re.search("twice|duplicate", str(refusal)), f"an unclear refusal: {refusal}"
        return
    assert_params_close([p_o], [p_t])


def _bad(name):
    p = torch.randn(3, requires_grad=True)
    m = torch.nn.Linear(2, 2)
    cases = {
        "tensor_lr_2_elements": lambda mod: getattr(mod, name)([p], lr=torch.tensor([0.1, 0.2])),
        "negative_lr": lambda mod: getattr(mod, name)([p], lr=-1.0),
        "negative_weight_decay": lambda mod: getattr(mod, name)([p], weight_decay=-0.1),
        "param_in_two_groups": lambda mod: getattr(mod, name)([{"params": [p]}, {"params": [p]}]),
        "single_tensor_params": lambda mod: getattr(mod, name)(p),
        "empty_params": lambda mod: getattr(mod, name)([]),
        "non_tensor_param": lambda mod: getattr(mod, name)([p, 1.0]),
        "non_leaf": lambda mod: getattr(mod, name)([p * 2]),
        "some_names_missing": lambda mod: getattr(mod, name)([("weight", m.weight), m.bias]),
        "named_and_unnamed_groups": lambda mod: getattr(mod, name)(
            [{"params": [("weight", m.weight)]}, {"params": [m.bias]}]),
        "set_in_add_param_group": lambda mod: getattr(mod, name)([m.weight]).add_param_group({"params": {m.bias}}),
        "load_wrong_group_count": lambda mod: getattr(mod, name)([m.weight]).load_state_dict(
            {"state": {}, "param_groups": []}),
        "load_wrong_group_size": lambda mod: getattr(mod, name)([m.weight]).load_state_dict(
            torch.optim.SGD([m.weight, m.bias]).state_dict()),
    }
    if name in ("Adam", "AdamW"):
        cases["mixed_betas_float_tensor"] = lambda mod: getattr(mod, name)([p], betas=(0.9, torch.tensor(0.99)))
        cases["mixed_betas_tensor_float"] = lambda mod: getattr(mod, name)([p], betas=(torch.tensor(0.9), 0.99))
        cases["beta_out_of_range"] = lambda mod: getattr(mod, name)([p], betas=(1.0, 0.999))
        cases["tensor_lr_with_foreach"] = lambda mod: getattr(mod, name)([p], lr=torch.tensor(0.1), foreach=True)
        cases["negative_eps"] = lambda mod: getattr(mod, name)([p], eps=-1.0)
    if name in ("Adam", "AdamW", "SGD", "Adagrad"):
        cases["fused_and_foreach"] = lambda mod: getattr(mod, name)([p], fused=True, foreach=True)
    if name == "SGD":
        cases["nesterov_without_momentum"] = lambda mod: getattr(mod, name)([p], nesterov=True)
        cases["negative_momentum"] = lambda mod: getattr(mod, name)([p], momentum=-0.5)
    if name == "RMSprop":
        cases["negative_alpha"] = lambda mod: getattr(mod, name)([p], alpha=-0.5)
        cases["negative_momentum"] = lambda mod: getattr(mod, name)([p], momentum=-0.5)
    if name == "Adagrad":
        cases["negative_lr_decay"] = lambda mod: getattr(mod, name)([p], lr_decay=-0.5)
        cases["negative_initial_accumulator"] = lambda mod: getattr(mod, name)([p], initial_accumulator_value=-1.0)
    return cases


BAD = [(n, c) for n in NAMES for c in _bad(n)]


@pytest.mark.parametrize("name,case", BAD, ids=[f"{n}-{c}" for n, c in BAD])
def test_invalid_use_raises_like_torch(name, case):
    expected = raised_type(lambda: _bad(name)[case](torch.optim))
    assert expected is not None, "torch accepts this"
    with pytest.raises(expected):
        _bad(name)[case](ours)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop", "Adagrad"])
def test_sparse_gradient_raises_like_torch(name):
    def run(mod):
        p = torch.zeros(4, requires_grad=True)
        opt = getattr(mod, name)([p])
        for t in range(3):
            p.grad = torch.sparse_coo_tensor([[1, 3]], [1.0, -2.0 + t], (4,))
            opt.step()
        return p.detach()

    expected = raised_type(lambda: run(torch.optim))
    if name == "Adagrad":  # torch's Adagrad supports sparse gradients: ours either does the same or refuses
        assert expected is None
        p_t = run(torch.optim)
        try:
            p_o = run(ours)
        except (RuntimeError, TypeError, ValueError) as e:
            assert not SELFTEST and "sparse" in str(e)
            return
        torch.testing.assert_close(p_o, p_t)
        return
    assert expected is not None
    with pytest.raises(expected):
        run(ours)


def test_params_as_a_set_warn_like_torch():
    for mod in (ours, torch.optim):
        with pytest.warns(FutureWarning, match="ordered collections"):
            mod.Adam({torch.zeros(2, requires_grad=True)})


# ---------------------------------------------------------------------------------------------------------------
# 14. Non-contiguous parameters: step like torch, or refuse at construction (never silently wrong)

LAYOUTS = {
    "transposed": lambda: torch.randn(4, 3).t().requires_grad_(),
    "strided_slice": lambda: torch.randn(6, 4)[:, ::2].requires_grad_(),
    "channels_last": lambda: torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last).requires_grad_(),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_parameter(name, layout):
    def params():
        torch.manual_seed(4)
        return [torch.randn(5, requires_grad=True), LAYOUTS[layout]()]

    po, pt = params(), params()
    assert not pt[1].is_contiguous() and po[1].stride() == pt[1].stride()
    ot = T(name)(pt, **BASIC[name])
    try:
        oo = O(name)(po, **BASIC[name])
    except (TypeError, ValueError) as e:
        assert "contiguous" in str(e)
        assert not SELFTEST
        return
    for t in range(20):
        for ps, o in ((po, oo), (pt, ot)):
            set_grads(ps, t)
            o.step()
    assert po[1].stride() == pt[1].stride()
    assert_params_close(po, pt)
    assert_optimizers_alike(oo, ot)


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_gradients(name):
    """A gradient assigned by hand in a transposed layout: step like torch, or refuse at step (never silently wrong)."""
    mo, oo, mt, ot = pair(name, BASIC[name])
    for t in range(20):
        for m, o in ((mt, ot), (mo, oo)):
            set_grads(m.parameters(), t)
            w = m[0].weight
            w.grad = w.grad.t().contiguous().t()  # the same values in a transposed layout
            assert not w.grad.is_contiguous()
            before = [p.detach().clone() for p in m.parameters()]
            try:
                o.step()
            except (RuntimeError, ValueError) as e:
                assert o is oo and not SELFTEST
                assert "contiguous" in str(e)
                assert all(torch.equal(p.detach(), q) for p, q in zip(m.parameters(), before))  # nothing half-done
                return
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 15. Closures, GradScaler, gradient clipping


@pytest.mark.parametrize("name", NAMES)
def test_step_with_closure_returns_the_loss(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    calls = {"ours": 0, "torch": 0}
    for t in range(30):
        losses = []
        for m, o, side in ((mo, oo, "ours"), (mt, ot, "torch")):
            def closure(m=m, o=o, side=side):
                calls[side] += 1
                o.zero_grad()
                loss = loss_of(m, t)
                loss.backward()  # the closure runs with gradients enabled
                return loss

            losses.append(o.step(closure))
        assert torch.is_tensor(losses[0]) and torch.is_tensor(losses[1])
        torch.testing.assert_close(losses[0].detach(), losses[1].detach(), **TOL[torch.float32])
    assert calls["ours"] == calls["torch"]
    set_grads(mo.parameters(), 99)
    set_grads(mt.parameters(), 99)
    assert oo.step() is None and ot.step() is None
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


SCALER_CASES = [(n, BASIC[n]) for n in NAMES] + [("Adam", dict(lr=1e-2, fused=True)),
                                                 ("SGD", dict(lr=1e-2, momentum=0.9, fused=True))]


@pytest.mark.parametrize("name,kwargs", SCALER_CASES, ids=[_id(*c) for c in SCALER_CASES])
def test_grad_scaler_with_inf_gradients_and_clipping(name, kwargs):
    mo, oo, mt, ot = pair(name, kwargs)
    so = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, growth_interval=4)
    st = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, growth_interval=4)
    skipped = {3, 7, 8, 20}
    for t in range(40):
        out = []
        for m, o, s in ((mo, oo, so), (mt, ot, st)):
            o.zero_grad()
            s.scale(loss_of(m, t)).backward()
            if t in skipped:
                m[2].weight.grad[0, 1] = float("inf") if t % 2 else float("nan")
            s.unscale_(o)
            norm = torch.nn.utils.clip_grad_norm_(m.parameters(), max_norm=0.5)
            result = s.step(o)
            s.update()
            out.append((s.get_scale(), result, float(norm)))
        assert out[0][0] == out[1][0] and out[0][1] == out[1][1], (t, out)
        assert math.isfinite(out[0][2]) == math.isfinite(out[1][2])
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)


# ---------------------------------------------------------------------------------------------------------------
# 16. A framework-style training loop with checkpoint and resume


def _schedule(total, warmup):
    def f(e):
        if e < warmup:
            return (e + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (e - warmup) / max(1, total - warmup)))
    return f


LOOP = {"Adam": dict(lr=3e-3), "AdamW": dict(lr=3e-3, weight_decay=0.05), "SGD": dict(lr=0.05, momentum=0.9,
        nesterov=True), "RMSprop": dict(lr=1e-3, momentum=0.5), "Adagrad": dict(lr=0.05)}


def _train(mod, name, model, opt, sched, start, stop):
    losses = []
    for t in range(start, stop):
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def _fresh(mod, name, seed):
    model = make_model(seed=seed)
    opt = getattr(mod, name)(model.parameters(), **LOOP[name])
    return model, opt, lr_scheduler.LambdaLR(opt, _schedule(60, 8))


@pytest.mark.parametrize("source", ["ours", "torch"])
@pytest.mark.parametrize("name", NAMES)
def test_training_loop_checkpoint_and_resume(name, source, tmp_path):
    reference = _fresh(torch.optim, name, seed=0)
    ref_losses = _train(torch.optim, name, *reference, 0, 60)

    src = ours if source == "ours" else torch.optim
    model, opt, sched = _fresh(src, name, seed=0)
    first = _train(src, name, model, opt, sched, 0, 30)
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "step": 30}, tmp_path / "ckpt.pt")
    del model, opt, sched

    ckpt = torch.load(tmp_path / "ckpt.pt")
    model, opt, sched = _fresh(ours, name, seed=123)  # fresh, differently initialised: everything comes from disk
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    second = _train(ours, name, model, opt, sched, ckpt["step"], 60)

    torch.testing.assert_close(first + second, ref_losses, **TOL[torch.float32])
    assert_params_close(model, reference[0])
    assert_optimizers_alike(opt, reference[1])
    assert sched.get_last_lr() == reference[2].get_last_lr()


# ---------------------------------------------------------------------------------------------------------------
# 17. Named parameters and extra group keys


@pytest.mark.parametrize("name", NAMES)
def test_named_parameters_like_torch(name):
    mo, oo, mt, ot = pair(name, BASIC[name], params=lambda m: m.named_parameters())
    assert oo.param_groups[0]["param_names"] == ot.param_groups[0]["param_names"] == ["0.weight", "0.bias",
                                                                                      "2.weight", "2.bias"]
    assert_groups_equal(oo.param_groups, ot.param_groups)
    open_loop([(mo, oo), (mt, ot)], 10)
    assert_params_close(mo, mt)
    assert_optimizers_alike(oo, ot)
    # a named state_dict into an optimizer built without names (and back): names are taken over like torch does
    saved = copy.deepcopy(ot.state_dict())
    unnamed = [getattr(mod, name)(copy.deepcopy(mt).parameters(), **BASIC[name]) for mod in (ours, torch.optim)]
    for o in unnamed:
        o.load_state_dict(copy.deepcopy(saved))
    assert_optimizers_alike(*unnamed)
    assert unnamed[0].param_groups[0].get("param_names") == unnamed[1].param_groups[0].get("param_names")


@pytest.mark.parametrize("name", NAMES)
def test_named_param_groups_and_extra_keys_are_kept(name):
    def groups(m):
        return [{"params": list(m[0].named_parameters()), "name": "encoder", "lr_scale": 0.5},
                {"params": list(m[2].named_parameters()), "name": "head", "lr": 0.02, "tags": ["a", "b"]}]

    mo, oo, mt, ot = pair(name, BASIC[name], params=groups)
    assert_groups_equal(oo.param_groups, ot.param_groups)
    assert oo.param_groups[0]["name"] == "encoder" and oo.param_groups[0]["lr_scale"] == 0.5
    open_loop([(mo, oo), (mt, ot)], 10)
    sd = copy.deepcopy(oo.state_dict())
    assert [g["name"] for g in sd["param_groups"]] == ["encoder", "head"]
    assert sd["param_groups"][1]["tags"] == ["a", "b"]
    assert_optimizers_alike(oo, ot)
    oo.param_groups[0]["lr_scale"] = 0.25
    ot.param_groups[0]["lr_scale"] = 0.25
    m2 = copy.deepcopy(mo)
    o2 = O(name)(groups(m2), **BASIC[name])
    o2.load_state_dict(copy.deepcopy(oo.state_dict()))
    assert o2.param_groups[0]["lr_scale"] == 0.25
    open_loop([(mo, oo), (mt, ot), (m2, o2)], 10, start=10)
    assert_params_close(mo, mt)
    assert_params_close(m2, mt)
    assert_optimizers_alike(oo, ot)
    assert_optimizers_alike(o2, ot)


# ---------------------------------------------------------------------------------------------------------------
# Odds and ends


@pytest.mark.parametrize("name", NAMES)
def test_zero_grad_like_torch(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    for m in (mo, mt):
        set_grads(m.parameters(), 0)
    oo.zero_grad(set_to_none=False)
    ot.zero_grad(set_to_none=False)
    assert [p.grad is not None and not p.grad.any() for p in mo.parameters()] == \
        [p.grad is not None and not p.grad.any() for p in mt.parameters()]
    oo.zero_grad()
    ot.zero_grad()
    assert [p.grad is None for p in mo.parameters()] == [p.grad is None for p in mt.parameters()] == [True] * 4


@pytest.mark.parametrize("name", NAMES)
def test_state_is_keyed_by_the_parameters(name):
    mo, oo, mt, ot = pair(name, BASIC[name])
    open_loop([(mo, oo), (mt, ot)], 3)
    assert isinstance(oo.state, collections.defaultdict) and isinstance(ot.state, collections.defaultdict)
    assert oo.state.default_factory is ot.state.default_factory is dict
    ids_o = {id(p): i for i, p in enumerate(mo.parameters())}
    ids_t = {id(p): i for i, p in enumerate(mt.parameters())}
    assert [ids_o[id(k)] for k in oo.state] == [ids_t[id(k)] for k in ot.state]
    for po, pt in zip(mo.parameters(), mt.parameters()):
        assert_state_entry_close(oo.state[po], ot.state[pt], None, "live state")


def test_no_warnings_beyond_torchs():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in NAMES:
            mo, oo, mt, ot = pair(name, BASIC[name])
            open_loop([(mo, oo), (mt, ot)], 3)
            oo.load_state_dict(copy.deepcopy(oo.state_dict()))
            ot.load_state_dict(copy.deepcopy(ot.state_dict()))
    # torch.optim warns about none of this; the same calls on ours must be silent too
    assert [str(w.message) for w in caught] == []
