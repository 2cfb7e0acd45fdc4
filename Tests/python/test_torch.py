"""Parity with torch.optim (a test dependency: `make deps` installs it): float32, 1000 steps, rtol 1e-5, atol 1e-6."""
import copy

import adamcore
import numpy as np
import pytest

from reference import Problem

import torch
import adamcore.torch as act

PAIRS = [
    ("adam", adamcore.Adam, torch.optim.Adam, dict(lr=1e-2)),
    ("adam l2", adamcore.Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    ("amsgrad", adamcore.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    ("adam maximize", adamcore.Adam, torch.optim.Adam, dict(lr=1e-2, maximize=True)),
    ("adamw", adamcore.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    ("sgd", adamcore.SGD, torch.optim.SGD, dict(lr=1e-2)),
    ("sgd momentum dampening", adamcore.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, dampening=0.2)),
    ("sgd nesterov l2", adamcore.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("rmsprop", adamcore.RMSprop, torch.optim.RMSprop, dict()),
    ("rmsprop centered momentum", adamcore.RMSprop, torch.optim.RMSprop, dict(centered=True, momentum=0.5)),
    ("adagrad", adamcore.Adagrad, torch.optim.Adagrad, dict(lr_decay=0.01, initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize("name,ours,theirs,kwargs", PAIRS, ids=[p[0] for p in PAIRS])
def test_numpy_optimizers_match_torch(name, ours, theirs, kwargs):
    problem = Problem([37, 100], seed=21)
    mine = [x.astype(np.float32) for x in problem.initial]
    params = [torch.tensor(x, dtype=torch.float32, requires_grad=True) for x in mine]
    a, b = ours(mine, **kwargs), theirs(params, **kwargs)
    for t in range(1, 1001):
        grads = problem.grads(t, np.float32)
        a.step(grads)
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy())
        b.step()
    for x, p in zip(mine, params):
        np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


TORCH_CLASSES = [
    ("adam", act.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    ("adamw", act.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
    ("sgd", act.SGD, torch.optim.SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
    ("rmsprop", act.RMSprop, torch.optim.RMSprop, dict(lr=1e-3, centered=True)),
    ("adagrad", act.Adagrad, torch.optim.Adagrad, dict(lr=1e-2)),
]


def _model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    x = torch.randn(256, 8)
    y = (x[:, :1] * 2 - x[:, 1:2]).sin()
    return model, x, y


@pytest.mark.parametrize("name,ours,theirs,kwargs", TORCH_CLASSES, ids=[c[0] for c in TORCH_CLASSES])
def test_torch_classes_match_torch_step_for_step(name, ours, theirs, kwargs):
    """The same gradient sequence through p.grad: the wrappers' arithmetic is torch's, at the parity tolerance."""
    problem = Problem([37, 100], seed=23)
    a_params = [torch.tensor(x, dtype=torch.float32, requires_grad=True) for x in problem.initial]
    b_params = [p.detach().clone().requires_grad_(True) for p in a_params]
    a, b = ours(a_params, **kwargs), theirs(b_params, **kwargs)
    for t in range(1, 1001):
        for params, opt in ((a_params, a), (b_params, b)):
            for p, g in zip(params, problem.grads(t, np.float32)):
                p.grad = torch.from_numpy(g)
            opt.step()
    for p, q in zip(a_params, b_params):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    for p, q in zip(a_params, b_params):  # the state torch keeps, in torch's layout
        assert a.state[p].keys() == b.state[q].keys(), name
        for key, value in b.state[q].items():
            torch.testing.assert_close(a.state[p][key], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("name,ours,theirs,kwargs", TORCH_CLASSES, ids=[c[0] for c in TORCH_CLASSES])
def test_torch_classes_train_a_model_like_torch(name, ours, theirs, kwargs):
    """Closed-loop training: rounding differences compound along the trajectory, so compare what training achieves."""
    model, x, y = _model_and_data()
    twin = copy.deepcopy(model)
    a, b = ours(model.parameters(), **kwargs), theirs(twin.parameters(), **kwargs)
    losses = {}
    for m, opt in ((model, a), (twin, b)):
        for _ in range(200):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(m(x), y)
            loss.backward()
            opt.step()
        losses[opt] = torch.nn.functional.mse_loss(m(x), y).item()
    assert losses[a] == pytest.approx(losses[b], rel=0.05), name


def test_torch_scheduler_and_state_dict():
    model, x, y = _model_and_data(1)
    opt = act.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 8)
    assert opt._ac.core.get_config(0).lr == pytest.approx(1e-2 / 4)  # pushed at the last step
    saved = opt.state_dict()
    clone = copy.deepcopy(model)
    other = act.Adam(clone.parameters(), lr=1.0)
    other.load_state_dict(saved)
    for m, o in ((model, opt), (clone, other)):
        o.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        o.step()
    for p, q in zip(model.parameters(), clone.parameters()):
        assert torch.equal(p, q)


def test_torch_adafix_uses_the_closure_twice():
    model, x, y = _model_and_data(2)
    opt = act.AdaFix(model.parameters(), lr=1e-2)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(50):
        last = opt.step(closure).item()
    assert len(calls) == 102 and last < first and opt._inner.lipschitz > 0
    with pytest.raises(TypeError, match="closure"):
        opt.step()


def test_torch_rejections():
    with pytest.raises(TypeError, match="complex64"):
        act.Adam([torch.zeros(3, dtype=torch.complex64, requires_grad=True)])
    p = torch.zeros(3, requires_grad=True)
    opt = act.SGD([p], lr=0.1, momentum=0.9)
    opt.step()  # no gradient: skipped, as torch skips it
    assert torch.equal(p, torch.zeros(3)) and len(opt.state) == 0
    p.grad = torch.ones(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    assert torch.equal(p, torch.zeros(3)) and len(opt.state) == 0


def test_a_state_dict_that_does_not_fit_is_refused_and_the_optimizer_keeps_working():
    """torch.optim would load it and fail at a later step; adamcore refuses it at load and keeps its own state."""
    model, x, y = _model_and_data(3)
    twin = copy.deepcopy(model)
    a, b = act.Adam(model.parameters(), lr=1e-2), act.Adam(twin.parameters(), lr=1e-2)
    for m, o in ((model, a), (twin, b)):
        o.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        o.step()
    bad = copy.deepcopy(a.state_dict())
    bad["state"][0]["exp_avg"] = torch.zeros(3)
    with pytest.raises(ValueError, match="elements"):
        a.load_state_dict(bad)
    for m, o in ((model, a), (twin, b)):
        for _ in range(3):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)
    assert a.state_dict()["state"][0]["step"] == 4


def test_torch_adafix_deepcopy_and_state_dict_continue_exactly():
    model, x, y = _model_and_data(4)
    opt = act.AdaFix(model.parameters(), lr=1e-2, next_gradient=True)

    def train(m, o, steps):
        for _ in range(steps):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()

    train(model, opt, 20)
    assert opt._inner.lipschitz > 0
    twin_model, twin = copy.deepcopy((model, opt))
    assert twin._inner.lipschitz == opt._inner.lipschitz
    train(model, opt, 10)
    train(twin_model, twin, 10)
    for p, q in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(p, q)
    assert float(twin.state[next(twin_model.parameters())]["step"]) == 30
    fresh = act.AdaFix(copy.deepcopy(model).parameters(), lr=1e-2, next_gradient=True)
    fresh.load_state_dict(opt.state_dict())
    assert float(fresh.state[fresh.param_groups[0]["params"][0]]["step"]) == 30


def test_a_model_cast_to_float64_after_steps_continues_with_its_state_cast():
    """torch.optim raises at the next step after model.double() (its float32 state meets float64 gradients); adamcore
    follows the new storage with its state cast, which is what torch gives when the state_dict is loaded into an
    optimizer over the cast model (load_state_dict casts state to each parameter's dtype): the oracle here."""
    model, x, y = _model_and_data(5)
    twin = copy.deepcopy(model)
    a, b = act.Adam(model.parameters(), lr=1e-2), torch.optim.Adam(twin.parameters(), lr=1e-2)
    for m, o in ((model, a), (twin, b)):
        for _ in range(5):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
    model.double()
    twin.double()
    reloaded = torch.optim.Adam(twin.parameters(), lr=1e-2)
    reloaded.load_state_dict(b.state_dict())
    for m, o in ((model, a), (twin, reloaded)):
        for _ in range(5):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x.double()), y.double()).backward()
            o.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert p.dtype == torch.float64 and a.state[p]["exp_avg"].dtype == torch.float64
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert float(a.state[next(model.parameters())]["step"]) == 10


def test_import_without_torch_says_what_is_missing():
    """Without torch, `import adamcore` works and `import adamcore.torch` is an ImportError that names torch and
    how to install it (not a bare ModuleNotFoundError from inside the module). torch is hidden from a child
    interpreter: None in sys.modules makes its import fail as a missing module's does."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None\n"
            "import adamcore, numpy as np\n"
            "w = np.ones(3, np.float32); adamcore.SGD([w], lr=0.5).step([np.ones(3, np.float32)])\n"
            "assert (w == 0.5).all()\n"
            "try:\n"
            "    import adamcore.torch\n"
            "except ImportError as e:\n"
            "    print('message:', e)\n"
            "else:\n"
            "    raise SystemExit('adamcore.torch imported without torch')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "adamcore.torch needs PyTorch" in out.stdout and "pip install torch" in out.stdout, out.stdout
