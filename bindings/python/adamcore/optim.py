"""torch.optim-style optimizers whose step runs in adamcore: parameters are updated in place, zero copies."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from . import _configs, _core, diagnostics

_DTYPES = {"f": np.float32, "d": np.float64, "e": np.float16}
_CODES = {np.float32: _core.FLOAT32, np.float64: _core.FLOAT64, np.float16: _core.FLOAT16, "bfloat16": _core.BFLOAT16}


def _is_bfloat16(array: Any) -> bool:
    # ml_dtypes' bfloat16 (numpy's ecosystem spelling) has no buffer format: it travels as its 16-bit patterns.
    return getattr(getattr(array, "dtype", None), "name", None) == "bfloat16"


def _dtype_of(array: Any, label: str):
    """float32, float64, float16 (numpy types) or "bfloat16" (ml_dtypes')."""
    if _is_bfloat16(array):
        return "bfloat16"
    try:
        fmt = memoryview(array).format.lstrip("@=<")
    except TypeError:
        raise TypeError(f"{label}: expected an array of float32, float64, float16 or bfloat16 (buffer protocol), "
                        f"got {type(array).__name__}") from None
    if fmt not in _DTYPES:
        raise TypeError(f"{label}: dtype must be float32, float64, float16 or bfloat16, got format '{fmt}'")
    return _DTYPES[fmt]


def _raw(array: Any) -> Any:
    return array.view(np.uint16) if _is_bfloat16(array) else array


_PRECISION_KEYS = ("state_dtype", "master_weights", "stochastic_rounding", "rounding_seed")


def _numpy_dtype(dtype):
    """A state dtype as numpy spells it (ml_dtypes' bfloat16 for "bfloat16")."""
    if dtype == "bfloat16" or getattr(dtype, "__name__", None) == "bfloat16" or str(dtype) == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def _hyperparameters(group: Dict[str, Any]) -> Dict[str, Any]:
    """What a step compares with what it last gave the core (`_unchanged`): a shallow copy, so that any edit of a
    group (item assignment, update, |=, pop, setdefault, ...) shows as a difference, with no need to intercept each
    way of making it. Compared as dicts, in C: a step's check costs ~0.3 us where a rebuilt list cost ~1.1 us."""
    return dict(group)


def _unchanged(group: Dict[str, Any], pushed: Dict[str, Any]) -> bool:
    try:
        return group == pushed   # values that are the same object compare equal without calling __eq__
    except Exception:            # a value whose == is not a bool (an array put in a group): treat as changed
        return False


class Optimizer:
    """Base class. Subclasses name their hyperparameters (torch's names and defaults) and build a Config.

    ``params``: a list of arrays, or of dicts with ``'params'`` and per-group hyperparameters (torch's param groups).
    Every array must be float32, float64, float16 or ml_dtypes.bfloat16 (16-bit ones keep float32 state), C-contiguous and writable; it is pinned (cannot be resized) while the
    optimizer lives. State arrays are numpy arrays of the parameter's dtype and shape, in ``self.state[i]``.
    Not thread-safe: one optimizer is stepped by one thread at a time (a second thread gets a RuntimeError).
    """

    _make_config: Callable[..., _core.Config]

    def __init__(self, params: Iterable[Any], defaults: Dict[str, Any], precision: Optional[Dict[str, Any]] = None):
        precision = dict(precision or {})
        unknown = set(precision) - set(_PRECISION_KEYS)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown keyword argument(s) {sorted(unknown)}")
        # Mixed precision (16-bit parameters): state_dtype (None: float32 for 16-bit parameters, else theirs),
        # master_weights, stochastic_rounding (bfloat16 writes), rounding_seed; as adamcore.torch takes them.
        self._precision = (precision.get("state_dtype"), bool(precision.get("master_weights", False)),
                           bool(precision.get("stochastic_rounding", False)), int(precision.get("rounding_seed", 0)))
        self.defaults = dict(defaults)
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: List[Dict[str, Any]] = []
        self._pushed: List[Dict[str, Any]] = []  # per group: _hyperparameters() as the core has them
        self.state: Dict[int, Dict[str, Any]] = {}
        self._params: List[Any] = []
        self._core: Optional[_core.Optimizer] = None
        self._bf16: List[bool] = []   # per parameter: bfloat16, whose arrays go to the core as uint16 views
        self._stats_on = False
        for group in groups:
            self.add_param_group(group)
        configs = [self._core.get_config(i) for i in range(len(self.param_groups))]
        if configs[0].algorithm in (_core.ADAM, _core.ADAFIX):
            narrowest = "float32" if any(_dtype_of(p, "") is not np.float64 for p in self._params) else "float64"
            diagnostics.warn_on_construction(configs, type(self).__name__, narrowest)

    # -- configuration ------------------------------------------------------------------------------------------
    def _config(self, group: Dict[str, Any]) -> _core.Config:
        return type(self)._make_config(**{k: v for k, v in group.items() if k != "params"})

    def add_param_group(self, group: Dict[str, Any]) -> None:
        params = group["params"]
        params = [params] if not isinstance(params, (list, tuple)) else list(params)
        merged = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        unknown = set(merged) - set(self.defaults)
        if unknown:
            raise TypeError(f"unknown hyperparameter(s) for {type(self).__name__}: {sorted(unknown)}")
        config = self._config(merged)
        first = len(self._params)
        dtypes = [_dtype_of(p, f"params[{first + i}]") for i, p in enumerate(params)]
        if self._core is None:
            self._core = _core.Optimizer(config)
            self._core.rounding_seed = self._precision[3]
            index = 0
        else:
            index = self._core.add_group(config)
        wanted, masters, stochastic, _ = self._precision
        for p, dtype in zip(params, dtypes):
            sixteen = dtype in (np.float16, "bfloat16")
            state_dtype = _numpy_dtype(wanted) if wanted is not None else np.dtype(np.float32 if sixteen else dtype)
            state_code = "bfloat16" if state_dtype.name == "bfloat16" else state_dtype.type
            if state_code not in _CODES:
                raise TypeError(f"{type(self).__name__}: state_dtype {state_dtype} is not float32, float64, float16 "
                                "or bfloat16")
            shape = getattr(p, "shape", None) or (len(memoryview(p).cast("B")) // np.dtype(dtype).itemsize,)
            fill = getattr(config, "initial_accumulator_value", 0.0)
            slots = {name: np.full(shape, fill if name == "sum" else 0.0, dtype=state_dtype)
                     for name in config.state_names}
            master = np.asarray(p, dtype=np.float32).copy() if masters and sixteen else None
            flags = (_core.TENSOR_MASTER_WEIGHTS if master is not None else 0) \
                | (_core.TENSOR_STOCHASTIC_PARAM if stochastic and dtype == "bfloat16" else 0) \
                | (_core.TENSOR_STOCHASTIC_STATE if stochastic and state_code == "bfloat16" else 0)
            if sixteen or state_code != dtype:
                code = _CODES[dtype]
                self._core.add_tensor(index, _raw(p), [_raw(s) for s in slots.values()],
                                      (code, code, _CODES[state_code], flags, 0, None, master))
            else:
                self._core.add_tensor(index, p, list(slots.values()))
            self._bf16.append(dtype == "bfloat16")
            if master is not None:
                slots["master_param"] = master   # saved and loaded with the state; the core steps it
            self.state[len(self._params)] = slots
            self._params.append(p)
        merged["params"] = list(range(first, len(self._params)))
        self.param_groups.append(merged)
        self._pushed.append(_hyperparameters(merged))

    def _sync(self) -> None:
        for index, group in enumerate(self.param_groups):
            if not _unchanged(group, self._pushed[index]):
                self._core.set_config(index, self._config(group))
                self._pushed[index] = _hyperparameters(group)

    # -- stepping -----------------------------------------------------------------------------------------------
    def step(self, grads: Sequence[Any], *, grad_scale: Optional[float] = None, found_inf: bool = False) -> bool:
        """One step: ``grads`` has one gradient per parameter, in registration order (same dtype and size).

        AMP: ``grad_scale`` is the loss scale the gradients carry (divided out; exact for powers of two), and
        ``found_inf=True`` skips the step. Returns False when the step was skipped (``found_inf``, or the
        ``nonfinite_guard`` found NaN or Inf in a gradient): then nothing changed, not even the step count.
        """
        self._sync()
        if any(self._bf16):
            grads = [_raw(g) for g in grads]
        if grad_scale is None and not found_inf:
            return self._core.step(grads)
        return self._core.step_with_options(grads, 1.0 if grad_scale is None else grad_scale, found_inf)

    @property
    def step_count(self) -> int:
        return self._core.step_count

    @property
    def nonfinite_guard(self) -> bool:
        """When True, a step whose gradients hold any NaN or Inf is skipped for every parameter (off by default:
        then a NaN gradient value reaches its own parameter and state element, and no other)."""
        return self._core.nonfinite_guard

    @nonfinite_guard.setter
    def nonfinite_guard(self, on: bool) -> None:
        self._core.nonfinite_guard = on

    @property
    def stats(self) -> int:
        """Measure :class:`adamcore.diagnostics.StepStats` inside the step (Adam, AdamW, AdaFix): False/0 never (the
        default), True/1 every step, k every k-th step (a measured step costs up to ~2x in cache)."""
        return self._stats_on

    @stats.setter
    def stats(self, every) -> None:
        self._core.set_stats(int(every))
        self._stats_on = int(every)

    @property
    def last_stats(self) -> "diagnostics.StepStats":
        """The last step's figures, the whole optimizer's with ``.tensors`` per parameter (built on access)."""
        return diagnostics._stats(self._core)

    @property
    def skipped_steps(self) -> int:
        """Steps skipped by ``found_inf`` or the guard."""
        return self._core.skipped_steps

    @property
    def last_nonfinite_count(self) -> int:
        """NaN and Inf values the guard counted in the last step's gradients."""
        return self._core.last_nonfinite_count

    # -- checkpoints (safetensors) ------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the whole optimizer state to ``path`` in the safetensors format, through a temporary file that is
        renamed into place (a crash never leaves a torn checkpoint). Parameters are not included."""
        self._sync()
        self._core.save(path)

    def load(self, path) -> None:
        """Restore a checkpoint written by ``save`` (or by the C or Swift API) into an optimizer with the same
        parameters and groups. Everything is validated first: on any error nothing changes."""
        self._core.load(path)
        self._groups_from_core()

    def checkpoint_bytes(self) -> bytes:
        """The checkpoint ``save`` would write, as bytes."""
        self._sync()
        return self._core.checkpoint_bytes()

    def load_bytes(self, data) -> None:
        """``load`` from bytes (or any bytes-like object)."""
        self._core.load_bytes(data)
        self._groups_from_core()

    def _groups_from_core(self) -> None:
        for index, group in enumerate(self.param_groups):
            values = _configs.hyperparameters(self._core.get_config(index), group.keys())
            group.update(values)
            self._pushed[index] = _hyperparameters(group)

    # -- checkpoints (torch's layout) ---------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """``{'state': {i: {'step': t, <slot>: array}}, 'param_groups': [...], 'adamcore': {...}}``.
        Arrays are references, as in torch: copy them to keep a snapshot."""
        t = self._core.step_count
        state = {i: {"step": t, **slots} for i, slots in self.state.items()}
        groups = [dict(g) for g in self.param_groups]
        return {"state": state, "param_groups": groups, "adamcore": self._scalars()}

    def _scalars(self) -> Dict[str, Any]:
        return {"step": self._core.step_count}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore hyperparameters, step and every state buffer. Everything is checked before anything changes."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} param groups, this optimizer {len(self.param_groups)}")
        configs = []
        for mine, theirs in zip(self.param_groups, groups):
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError("a param group of the state_dict has a different number of parameters")
            configs.append(self._config({k: v for k, v in theirs.items() if k != "params"}))
        saved = state_dict["state"]
        order = [i for g in groups for i in g["params"]]
        steps = set()
        for mine_index, their_index in enumerate(order):
            entry = saved.get(their_index, saved.get(str(their_index)))
            slots = self.state[mine_index]
            if entry is None or set(entry) - {"step"} != set(slots):
                raise ValueError(f"state of parameter {mine_index}: expected {sorted(slots)} and 'step'")
            steps.add(int(entry["step"]))
            for name, array in slots.items():
                value = np.asarray(entry[name])
                if value.shape != array.shape or value.dtype != array.dtype:
                    raise ValueError(f"state[{mine_index}]['{name}']: {value.dtype}{list(value.shape)} does not match "
                                     f"{array.dtype}{list(array.shape)}")
        scalars = state_dict.get("adamcore", {})
        step = int(scalars.get("step", steps.pop() if len(steps) == 1 else -1))
        if len(steps) > 1 or step < 0:
            raise ValueError("all parameters must share one step count")
        self._validate_scalars(scalars)
        # Everything checked: now change.
        for index, (mine, theirs, config) in enumerate(zip(self.param_groups, groups, configs)):
            self._core.set_config(index, config)
            mine.update({k: v for k, v in theirs.items() if k != "params"})
            self._pushed[index] = _hyperparameters(mine)
        for mine_index, their_index in enumerate(order):
            entry = saved.get(their_index, saved.get(str(their_index)))
            for name, array in self.state[mine_index].items():
                np.copyto(array, entry[name])
        self._core.step_count = step
        self._restore_scalars(scalars)

    def _validate_scalars(self, scalars: Dict[str, Any]) -> None:
        pass

    def _restore_scalars(self, scalars: Dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        groups = ", ".join(f"{len(g['params'])} params" for g in self.param_groups)
        return f"{type(self).__name__}({groups}, step {self.step_count})"


class Adam(Optimizer):
    """torch.optim.Adam. Extra keywords: ``eps_root`` (optax), ``amsgrad_optax_order``, ``bias_correction``."""
    _make_config = staticmethod(_configs.adam)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, eps_root=0.0, amsgrad_optax_order=False, bias_correction=True, **precision):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, eps_root=eps_root, amsgrad_optax_order=amsgrad_optax_order,
                                      bias_correction=bias_correction, decoupled_weight_decay=False), precision)


class AdamW(Optimizer):
    """torch.optim.AdamW: Adam with decoupled weight decay (default 1e-2)."""
    _make_config = staticmethod(_configs.adam)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, eps_root=0.0, amsgrad_optax_order=False, bias_correction=True, **precision):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, eps_root=eps_root, amsgrad_optax_order=amsgrad_optax_order,
                                      bias_correction=bias_correction, decoupled_weight_decay=True), precision)


class SGD(Optimizer):
    """torch.optim.SGD."""
    _make_config = staticmethod(_configs.sgd)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False, **precision):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize), precision)


class RMSprop(Optimizer):
    """torch.optim.RMSprop."""
    _make_config = staticmethod(_configs.rmsprop)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False, **precision):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize), precision)


class Adagrad(Optimizer):
    """torch.optim.Adagrad."""
    _make_config = staticmethod(_configs.adagrad)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
                 maximize=False, **precision):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize),
                         precision)


class AdaFix(Optimizer):
    """AdaFix (seed 001): Adam whose second moment is held fixed once max|g| < L*lr over all parameters.

    ``step(grads, grad_fn)``: after the update, ``grad_fn()`` must return the same minibatch's gradients at the new
    parameters (one array per parameter); they refine the Lipschitz estimate L. With ``next_gradient=True`` the
    next step's gradients are used instead (an approximation: no extra evaluation, ``grad_fn`` not needed).
    """
    _make_config = staticmethod(_configs.adafix)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False,
                 decoupled_weight_decay=False, eps_root=0.0, bias_correction=True, next_gradient=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay, eps_root=eps_root,
                                      bias_correction=bias_correction, next_gradient=next_gradient))

    def add_param_group(self, group: Dict[str, Any]) -> None:
        if self.param_groups and group.get("next_gradient", self.defaults["next_gradient"]) != \
                self.param_groups[0]["next_gradient"]:
            raise ValueError("all AdaFix param groups must agree on next_gradient")
        super().add_param_group(group)

    @property
    def next_gradient(self) -> bool:
        return bool(self.param_groups[0]["next_gradient"])

    def step(self, grads: Sequence[Any], grad_fn: Optional[Callable[[], Sequence[Any]]] = None, *,
             found_inf: bool = False) -> bool:
        """One AdaFix step (``grad_scale`` is not supported: L compares gradients across steps). False if skipped;
        then ``grad_fn`` is not called."""
        if not self.next_gradient and grad_fn is None:
            raise TypeError("AdaFix.step needs grad_fn (the same minibatch's gradients at the new parameters), "
                            "or construct the optimizer with next_gradient=True")
        self._sync()
        applied = self._core.step_with_options(grads, 1.0, True) if found_inf else self._core.step(grads)
        if applied and not self.next_gradient:
            # The parameters have moved; g' can only be evaluated now. A failure here leaves L as it was.
            self._core.adafix_observe(grads, grad_fn())
        return applied

    @property
    def lipschitz(self) -> float:
        """The Lipschitz estimate L."""
        return self._core.lipschitz

    @property
    def v_updated(self) -> bool:
        """Whether the last step updated the second moment (the gate was open)."""
        return self._core.v_updated

    def _scalars(self) -> Dict[str, Any]:
        return {"step": self._core.step_count, "lipschitz": self._core.lipschitz,
                "adafix_step_norm_sq": self._core.adafix_step_norm_sq}

    def _validate_scalars(self, scalars: Dict[str, Any]) -> None:
        lipschitz = float(scalars.get("lipschitz", 0.0))
        norm = float(scalars.get("adafix_step_norm_sq", -1.0))
        if not (np.isfinite(lipschitz) and lipschitz >= 0):
            raise ValueError(f"lipschitz must be finite and >= 0, got {lipschitz}")
        if not (norm == -1.0 or (np.isfinite(norm) and norm >= 0)):
            raise ValueError(f"adafix_step_norm_sq must be -1 or finite and >= 0, got {norm}")

    def _restore_scalars(self, scalars: Dict[str, Any]) -> None:
        self._core.lipschitz = float(scalars.get("lipschitz", 0.0))
        self._core.adafix_step_norm_sq = float(scalars.get("adafix_step_norm_sq", -1.0))
