"""Stateless steps mirroring the C functions: one in-place update of one buffer set per call.

Each keyword form builds (and caches) a Config; the fastest path is to build the Config once and call
``adamcore.step(config, t, param, grad, *state)`` directly.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional, Tuple

from . import _configs, _core

_cached = {name: lru_cache(maxsize=64)(getattr(_configs, name)) for name in
           ("adam", "adafix", "sgd", "rmsprop", "adagrad")}


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step: int, lr=1e-3, betas=(0.9, 0.999),
              eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, eps_root=0.0,
              amsgrad_optax_order=False, bias_correction=True) -> None:
    """Adam / AdamW (decoupled_weight_decay) / AMSGrad (pass max_exp_avg_sq)."""
    config = _cached["adam"](lr, tuple(betas), eps, weight_decay, max_exp_avg_sq is not None, maximize=maximize,
                             decoupled_weight_decay=decoupled_weight_decay, eps_root=eps_root,
                             amsgrad_optax_order=amsgrad_optax_order, bias_correction=bias_correction)
    if max_exp_avg_sq is None:
        _core.step(config, step, param, grad, exp_avg, exp_avg_sq)
    else:
        _core.step(config, step, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)


def adafix_step(param, grad, exp_avg, exp_avg_sq, *, step: int, lipschitz: float, lr=1e-3, betas=(0.9, 0.999),
                eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False, eps_root=0.0,
                bias_correction=True) -> Tuple[float, float, bool]:
    """AdaFix on a buffer set that is the whole model. Returns (max_abs_grad, step_norm_sq, v_updated); pass
    step_norm_sq and the gradient at the new point to ``adafix_lipschitz`` to raise L."""
    config = _cached["adafix"](lr, tuple(betas), eps, weight_decay, maximize=maximize,
                               decoupled_weight_decay=decoupled_weight_decay, eps_root=eps_root,
                               bias_correction=bias_correction)
    return _core.adafix_step(config, step, param, grad, exp_avg, exp_avg_sq, lipschitz)


def adafix_lipschitz(grad, new_grad, step_norm_sq: float, lipschitz: float) -> float:
    """max(L, ||new_grad - grad|| / sqrt(step_norm_sq))."""
    return _core.adafix_lipschitz(grad, new_grad, step_norm_sq, lipschitz)


def sgd_step(param, grad, momentum_buffer=None, *, step: int, lr=1e-3, momentum=0.0, dampening=0.0,
             weight_decay=0.0, nesterov=False, maximize=False) -> None:
    """SGD; momentum_buffer is required exactly when momentum > 0 (overwritten with the gradient at step 1)."""
    config = _cached["sgd"](lr, momentum, dampening, weight_decay, nesterov, maximize=maximize)
    state = () if momentum_buffer is None else (momentum_buffer,)
    _core.step(config, step, param, grad, *state)


def rmsprop_step(param, grad, square_avg, grad_avg=None, momentum_buffer=None, *, step: int, lr=1e-2, alpha=0.99,
                 eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False) -> None:
    """RMSprop; grad_avg exactly when centered, momentum_buffer exactly when momentum > 0."""
    config = _cached["rmsprop"](lr, alpha, eps, weight_decay, momentum, centered, maximize=maximize)
    state = [square_avg] + ([grad_avg] if centered else []) + ([momentum_buffer] if momentum > 0 else [])
    if (grad_avg is not None) != bool(centered) or (momentum_buffer is not None) != (momentum > 0):
        raise TypeError("rmsprop_step: pass grad_avg exactly when centered and momentum_buffer exactly when momentum > 0")
    _core.step(config, step, param, grad, *state)


def adagrad_step(param, grad, state_sum, *, step: int, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 maximize=False) -> None:
    """AdaGrad; state_sum starts at initial_accumulator_value (the caller fills it)."""
    config = _cached["adagrad"](lr, lr_decay, weight_decay, 0.0, eps, maximize=maximize)
    _core.step(config, step, param, grad, state_sum)
