"""torch.optim.Optimizer subclasses that step CPU parameters through adamcore, sharing memory (no copies).

    model = ...
    opt = adamcore.torch.Adam(model.parameters(), lr=1e-3)      # instead of torch.optim.Adam
    loss.backward(); opt.step(); opt.zero_grad()

Parameters must be CPU tensors of float32 or float64, contiguous, and every parameter must have a gradient at each
step (adamcore steps all registered tensors in one call; pass only trainable parameters). Replacing ``p.data`` with
a new tensor after construction is not supported (the optimizer holds a view of the original memory).
``AdaFix.step(closure)`` evaluates the closure again after the update: the same minibatch's gradient at the new
parameters, which refines the Lipschitz estimate (or construct it with ``next_gradient=True``).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch

from . import optim as _optim


class _Wrapped(torch.optim.Optimizer):
    _inner_class: type

    def __init__(self, params, **defaults):
        super().__init__(params, defaults)
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64) or not p.is_contiguous():
                    raise TypeError("adamcore.torch needs contiguous CPU float32/float64 parameters, got "
                                    f"{p.dtype} on {p.device}{'' if p.is_contiguous() else ' (not contiguous)'}")
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [p.detach().numpy() for p in group["params"]]})
        self._inner: _optim.Optimizer = self._inner_class(groups)
        self._flat = [p for group in self.param_groups for p in group["params"]]
        for index, p in enumerate(self._flat):
            self.state[p] = {name: torch.from_numpy(array) for name, array in self._inner.state[index].items()}

    def _push_hyperparameters(self) -> None:
        # Only adamcore's hyperparameters: schedulers add their own keys (initial_lr, ...) to the groups.
        known = self._inner.defaults
        for mine, inner in zip(self.param_groups, self._inner.param_groups):
            for key, value in mine.items():
                if key in known and inner.get(key) != value:
                    inner[key] = value

    def _gradients(self):
        grads = []
        for index, p in enumerate(self._flat):
            if p.grad is None:
                raise RuntimeError(f"parameter {index} has no gradient: adamcore steps every registered parameter "
                                   "(construct the optimizer with trainable parameters only)")
            if p.grad.is_sparse:
                raise RuntimeError("adamcore does not support sparse gradients")
            grads.append(p.grad.detach().contiguous().numpy())
        return grads

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._push_hyperparameters()
        self._inner.step(self._gradients())
        for p in self._flat:
            self.state[p]["step"] = torch.tensor(float(self._inner.step_count))
        return loss

    def state_dict(self) -> Dict[str, Any]:
        self._push_hyperparameters()  # a scheduler may have changed them since the last step
        inner = self._inner.state_dict()
        return {"state": {i: {k: (torch.from_numpy(v.copy()) if hasattr(v, "shape") else torch.tensor(float(v)))
                              for k, v in entry.items()} for i, entry in inner["state"].items()},
                "param_groups": [dict(g) for g in inner["param_groups"]], "adamcore": inner["adamcore"]}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        inner = {"state": {int(i): {k: (v.detach().cpu().numpy() if k != "step" else int(v)) for k, v in entry.items()}
                           for i, entry in state_dict["state"].items()},
                 "param_groups": state_dict["param_groups"], "adamcore": state_dict.get("adamcore", {})}
        self._inner.load_state_dict(inner)
        for mine, theirs in zip(self.param_groups, self._inner.param_groups):
            mine.update({k: v for k, v in theirs.items() if k != "params"})


class Adam(_Wrapped):
    _inner_class = _optim.Adam

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)


class AdamW(_Wrapped):
    _inner_class = _optim.AdamW

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)


class SGD(_Wrapped):
    _inner_class = _optim.SGD

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov, maximize=maximize)


class RMSprop(_Wrapped):
    _inner_class = _optim.RMSprop

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered, maximize=maximize)


class Adagrad(_Wrapped):
    _inner_class = _optim.Adagrad

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
                 maximize=False):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)


class AdaFix(_Wrapped):
    _inner_class = _optim.AdaFix

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False,
                 next_gradient=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                         next_gradient=next_gradient)

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        inner: _optim.AdaFix = self._inner
        if not inner.next_gradient and closure is None:
            raise TypeError("adamcore.torch.AdaFix.step needs a closure (it is evaluated again at the new parameters "
                            "for the Lipschitz estimate), or construct it with next_gradient=True")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._push_hyperparameters()
        grads = [g.copy() for g in self._gradients()]  # the closure below overwrites p.grad

        def new_gradients():
            with torch.enable_grad():
                closure()
            return self._gradients()

        inner.step(grads, grad_fn=None if inner.next_gradient else new_gradients)
        for p in self._flat:
            self.state[p]["step"] = torch.tensor(float(inner.step_count))
        return loss
