"""The one place where torch-style hyperparameters become adamcore Configs (validated by the core)."""
from __future__ import annotations

from typing import Tuple

from . import _core


def _flags(**named: bool) -> int:
    value = 0
    for name, on in named.items():
        if on:
            value |= getattr(_core, "FLAG_" + name.upper())
    return value


def _betas(betas: Tuple[float, float]) -> Tuple[float, float]:
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a pair of floats, got {betas!r}") from None
    return float(beta1), float(beta2)


def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *, maximize=False,
         decoupled_weight_decay=False, eps_root=0.0, amsgrad_optax_order=False, bias_correction=True) -> _core.Config:
    beta1, beta2 = _betas(betas)
    flags = _flags(amsgrad=amsgrad, amsgrad_optax_order=amsgrad_optax_order, maximize=maximize,
                   decoupled_weight_decay=decoupled_weight_decay, no_bias_correction=not bias_correction)
    return _core.Config(_core.ADAM, flags, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                        eps_root=eps_root)


def adafix(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False, decoupled_weight_decay=False,
           eps_root=0.0, bias_correction=True, next_gradient=False) -> _core.Config:
    beta1, beta2 = _betas(betas)
    flags = _flags(maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
                   no_bias_correction=not bias_correction, adafix_next_gradient=next_gradient)
    return _core.Config(_core.ADAFIX, flags, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                        eps_root=eps_root)


def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *, maximize=False) -> _core.Config:
    return _core.Config(_core.SGD, _flags(nesterov=nesterov, maximize=maximize), lr=lr, momentum=momentum,
                        dampening=dampening, weight_decay=weight_decay)


def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
            maximize=False) -> _core.Config:
    return _core.Config(_core.RMSPROP, _flags(centered=centered, maximize=maximize), lr=lr, alpha=alpha, eps=eps,
                        weight_decay=weight_decay, momentum=momentum)


def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
            maximize=False) -> _core.Config:
    return _core.Config(_core.ADAGRAD, _flags(maximize=maximize), lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps)


_FLAG_KEYS = {"maximize": "MAXIMIZE", "amsgrad": "AMSGRAD", "amsgrad_optax_order": "AMSGRAD_OPTAX_ORDER",
              "decoupled_weight_decay": "DECOUPLED_WEIGHT_DECAY", "nesterov": "NESTEROV", "centered": "CENTERED",
              "next_gradient": "ADAFIX_NEXT_GRADIENT"}


def hyperparameters(config: _core.Config, keys) -> dict:
    """The inverse of the builders above: the torch-style value of each of ``keys`` that ``config`` holds."""
    values = {}
    for key in keys:
        if key == "betas":
            values[key] = (config.beta1, config.beta2)
        elif key == "bias_correction":
            values[key] = not config.flags & _core.FLAG_NO_BIAS_CORRECTION
        elif key in _FLAG_KEYS:
            values[key] = bool(config.flags & getattr(_core, "FLAG_" + _FLAG_KEYS[key]))
        elif key != "params":
            values[key] = getattr(config, key)
    return values
