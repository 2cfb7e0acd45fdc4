"""Drop-in torch.optim optimizers for CPU tensors, stepped by adamcore in one call per step.

    opt = adamcore.torch.AdamW(model.parameters(), lr=1e-3)      # instead of torch.optim.AdamW
    loss.backward(); opt.step(); opt.zero_grad()

Each class subclasses its torch.optim counterpart, so construction (argument checks, warnings, param-group keys),
hooks, ``state_dict``/``load_state_dict`` (in torch's format, both ways), ``add_param_group``, schedulers and
``GradScaler`` behave as torch's do; only the update runs in adamcore, over the parameters' own memory.

What follows torch.optim: a parameter whose ``.grad`` is None is skipped (its state and step stay); every
parameter keeps its own ``state[p]['step']``, which may be reset or edited (``del opt.state[p]``, ``zero_()``);
``param_groups`` may be edited between steps (``lr`` as a float or a Tensor that a scheduler updates in place,
``|=``, replacing ``"params"``); ``p.data = ...`` is followed (state kept); deepcopy and pickling work.

Mixed precision: parameters may be float32, float64, bfloat16 or float16 (gradients in the parameter's dtype,
as autograd makes them); Adam, AdamW, SGD, RMSprop and Adagrad take four more keyword arguments:
``state_dtype`` (None: float32 for 16-bit parameters, else the parameter's; ``torch.bfloat16``; or the 16-bit
parameter's own dtype, torch's layout), ``master_weights=True`` (16-bit parameters step a float32 master copy,
kept in ``state[p]['master_param']``, and are written as its rounded copy) and ``stochastic_rounding=True``
(bfloat16 writes round stochastically; ``rounding_seed=`` makes them reproducible). The arithmetic is float32.

Refused with an error, never ignored: ``capturable=True`` and ``differentiable=True`` (no CPU meaning here),
parameters that are not contiguous CPU tensors of those dtypes, a ``state_dtype`` that does not fit a parameter,
16-bit parameters for ``AdaFix``, sparse or non-contiguous gradients. ``foreach`` and ``fused`` are accepted and
kept (adamcore has one implementation);
``fused=True`` also lets ``GradScaler`` hand the loss scale to the step, as torch's fused optimizers do.
``AdaFix.step(closure)`` evaluates the closure again after the update: the same minibatch's gradient at the new
parameters, which refines the Lipschitz estimate (or construct it with ``next_gradient=True``).
"""
from __future__ import annotations

import collections
from itertools import chain
from typing import Any, Callable, Dict, List, Optional

import numpy as np

try:
    import torch
except ImportError as _missing:  # adamcore itself needs only numpy; this face is torch's
    raise ImportError("adamcore.torch needs PyTorch, which is not installed in this environment "
                      f"({_missing}): pip install torch (its CPU build is enough). The numpy face, "
                      "`import adamcore`, works without it.") from _missing
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from . import _configs, _core
from . import optim as _optim

_SUPPORTED = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_SIXTEEN_BIT = (torch.bfloat16, torch.float16)
_CODES = {torch.float32: _core.FLOAT32, torch.float64: _core.FLOAT64, torch.bfloat16: _core.BFLOAT16,
          torch.float16: _core.FLOAT16}


def _raw(t: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a numpy array the core takes (16-bit values as their bit patterns: numpy has no
    bfloat16 buffer format)."""
    return t.view(torch.int16).numpy() if t.dtype in _SIXTEEN_BIT else t.numpy()


def _is_dtensor(t: torch.Tensor) -> bool:
    # DTensor (FSDP2, tensor parallel): adamcore steps each rank's local shard.
    return type(t).__name__ == "DTensor" and hasattr(t, "_local_tensor")


def _local(t: torch.Tensor) -> torch.Tensor:
    return t._local_tensor if _is_dtensor(t) else t


_PLAIN = (float, int, bool, type(None))


def _scalar(value: Any) -> Any:
    """A hyperparameter as the core takes it: a 1-element Tensor (an lr a scheduler updates) becomes its float."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, torch.Tensor):
        return float(value)
    if isinstance(value, tuple):
        return tuple(_scalar(v) for v in value)
    return value


def _profiler_enabled() -> bool:
    return torch._C._autograd._profiler_enabled()


class _Changes:
    """Counts mutations of the optimizer's state mappings, so a step only looks for edits after there were some."""
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _tracked(base: type) -> type:
    """A subclass of dict or defaultdict whose every mutation is counted in ``self._changes``. It pickles and
    deep-copies as its plain base type, so checkpoints never depend on adamcore."""

    def bump(method_name: str):
        method = getattr(base, method_name)

        def wrapper(self, *args, **kwargs):
            self._changes.count += 1
            return method(self, *args, **kwargs)
        wrapper.__name__ = method_name
        return wrapper

    names = ["__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault", "__ior__"]
    namespace: Dict[str, Any] = {name: bump(name) for name in names}

    def __reduce__(self):
        if base is collections.defaultdict:
            return (collections.defaultdict, (self.default_factory,), None, None, iter(self.items()))
        return (dict, (dict(self),))
    namespace["__reduce__"] = __reduce__
    namespace["__reduce_ex__"] = lambda self, protocol: __reduce__(self)
    return type("Tracked" + base.__name__, (base,), namespace)


_TrackedDefaultDict = _tracked(collections.defaultdict)
_TrackedDict = _tracked(dict)


def _state_mapping(changes: _Changes, items=()) -> collections.defaultdict:
    state = _TrackedDefaultDict(dict)
    state._changes = changes
    for key, value in items:
        collections.defaultdict.__setitem__(state, key, value)
    return state


def _param_state(changes: _Changes, entries: Dict[str, Any]) -> dict:
    d = _TrackedDict()
    d._changes = changes
    dict.update(d, entries)
    return d


class _Record:
    """One registered parameter: the parameter, the memory registered for it, and its state buffers."""
    __slots__ = ("param", "alias", "slots", "fill", "master", "exposed", "entries")

    def __init__(self, param, alias, slots, fill, master=None):
        self.param = param
        self.alias = alias      # keeps the registered storage alive even after `p.data = ...`
        self.slots = slots      # slot name -> tensor (the library's state memory)
        self.fill = fill        # the value fresh state starts at (AdaGrad's initial_accumulator_value)
        self.master = master    # float32 master weights of a 16-bit parameter (master_weights=True), else None
        self.exposed = None     # the dict placed in self.state[param], once the parameter has state in torch's eyes
        self.entries = None     # what `exposed` held when placed, to notice edits

    def intact(self, current) -> bool:
        return current is self.exposed and len(current) == len(self.entries) and \
            all(current.get(k) is v for k, v in self.entries.items())


class _Registration:
    """Everything adamcore keeps for an optimizer beside torch's own attributes (rebuilt, never pickled)."""

    def __init__(self):
        self.changes = _Changes()
        self.core: Optional[_core.Optimizer] = None
        self.records: List[_Record] = []
        self.pushed: List[Any] = []             # per group: the hyperparameters last given to the core
        self.step_dtype = torch.float32
        self.steps_np: Optional[np.ndarray] = None  # per tensor state['step'] values (None: SGD keeps none)
        self.steps_t: Optional[torch.Tensor] = None
        self.state_obj = None
        self.seen = -1


class _AdamCoreOptimizer:
    """The adamcore side of every class below; mixed in before the torch.optim class it replaces."""

    _make_config: Callable[..., _core.Config]
    _hyper_keys: tuple = ()
    _slot_order: Callable[[dict], List[str]]
    _keeps_step = True          # torch keeps state['step'] (not SGD)

    def __init__(self, params, *args, state_dtype: Optional[torch.dtype] = None, master_weights: bool = False,
                 stochastic_rounding: bool = False, rounding_seed: int = 0, **kwargs):
        self._ac = None
        if state_dtype not in (None, torch.float32, torch.float64, torch.bfloat16, torch.float16):
            raise TypeError(f"adamcore.torch.{type(self).__name__}: state_dtype must be None, torch.float32, "
                            f"torch.bfloat16 or a 16-bit parameter's own dtype, got {state_dtype!r}")
        if not 0 <= int(rounding_seed) < 2 ** 64:
            raise ValueError(f"rounding_seed must be in [0, 2**64), got {rounding_seed}")
        self._precision = (state_dtype, bool(master_weights), bool(stochastic_rounding), int(rounding_seed))
        super().__init__(params, *args, **kwargs)
        for group in self.param_groups:
            self._check_group(group)
        self._rebuild()
        if self._precision[2] and not any(self._rounds_bf16(r.alias.dtype) for r in self._ac.records):
            raise ValueError(f"adamcore.torch.{type(self).__name__}: stochastic_rounding=True rounds bfloat16 writes, "
                             "and no parameter or state here is bfloat16")

    # -- mixed precision ----------------------------------------------------------------------------------------
    def _state_dtype(self, dtype: torch.dtype) -> torch.dtype:
        wanted = self._precision[0]
        if wanted is None:
            return torch.float32 if dtype in _SIXTEEN_BIT else dtype
        if dtype == torch.float64 and wanted != torch.float64:
            raise TypeError(f"adamcore.torch.{type(self).__name__}: float64 parameters keep float64 state, "
                            f"state_dtype={wanted} does not fit them")
        if wanted == torch.float16 and dtype != torch.float16:
            raise TypeError(f"adamcore.torch.{type(self).__name__}: float16 state is only for float16 parameters "
                            f"(torch's layout), not {dtype}")
        if wanted == torch.float64 and dtype != torch.float64:
            raise TypeError(f"adamcore.torch.{type(self).__name__}: float64 state is only for float64 parameters")
        return wanted

    def _rounds_bf16(self, dtype: torch.dtype) -> bool:
        return dtype == torch.bfloat16 or (dtype != torch.float64 and self._state_dtype(dtype) == torch.bfloat16)

    def _layout(self, alias: torch.Tensor, state_dtype: torch.dtype, master: Optional[torch.Tensor]):
        """The core's layout tuple for a parameter, or None for the plain float32/float64 one."""
        _, _, stochastic, _ = self._precision
        if alias.dtype not in _SIXTEEN_BIT and state_dtype == alias.dtype:
            return None
        flags = _core.TENSOR_MASTER_WEIGHTS if master is not None else 0
        if stochastic and alias.dtype == torch.bfloat16:
            flags |= _core.TENSOR_STOCHASTIC_PARAM
        if stochastic and state_dtype == torch.bfloat16:
            flags |= _core.TENSOR_STOCHASTIC_STATE
        code = _CODES[alias.dtype]
        return (code, code, _CODES[state_dtype], flags, 0, None, None if master is None else master.numpy())

    # -- what adamcore refuses ---------------------------------------------------------------------------------
    def _check_group(self, group: Dict[str, Any]) -> None:
        name = type(self).__name__
        if group.get("capturable"):
            raise ValueError(f"adamcore.torch.{name}: capturable=True is for CUDA graph capture; adamcore steps CPU "
                             "tensors, so it has no meaning here")
        if group.get("differentiable"):
            raise ValueError(f"adamcore.torch.{name}: differentiable=True (autograd through the step) is not "
                             "supported; use torch.optim for that")
        for p in group["params"]:
            t = _local(p)
            problem = None
            if t.device.type != "cpu":
                problem = f"on {t.device}"
            elif t.dtype not in _SUPPORTED:
                problem = f"of dtype {t.dtype}"
            elif t.layout != torch.strided or not t.is_contiguous():
                problem = "not contiguous"
            if problem:
                raise TypeError(f"adamcore.torch.{name}: a parameter {problem} (shape {tuple(p.shape)}); adamcore "
                                "steps contiguous CPU float32, float64, bfloat16 and float16 tensors")
            self._state_dtype(t.dtype)   # a state_dtype that does not fit this parameter raises here

    # -- registration -----------------------------------------------------------------------------------------
    def _config(self, group: Dict[str, Any]) -> _core.Config:
        return type(self)._make_config(**{k: _scalar(group[k]) for k in self._hyper_keys})

    def _hyper(self, group: Dict[str, Any]) -> tuple:
        return tuple([_scalar(group[k]) for k in self._hyper_keys])

    def _rebuild(self) -> None:
        """Registers every parameter anew from param_groups and self.state (construction, load_state_dict,
        deepcopy and pickling, and edits of the parameter lists). State values present in self.state are kept."""
        old = self._ac
        ac = _Registration()
        non_fused = any(not g.get("fused") for g in self.param_groups)
        ac.step_dtype = torch.float64 if non_fused and torch.get_default_dtype() == torch.float64 else torch.float32
        if self._keeps_step:
            n = sum(len(g["params"]) for g in self.param_groups)
            ac.steps_t = torch.zeros(max(2 * n, 16), dtype=ac.step_dtype)
            ac.steps_np = ac.steps_t.numpy()
        seen = set()
        for group in self.param_groups:
            for p in group["params"]:
                if id(p) in seen:
                    raise ValueError(f"adamcore.torch.{type(self).__name__}: a parameter is listed twice (torch.optim "
                                     "would step it twice per step, which it deprecates); list each parameter once")
                seen.add(id(p))
        previous = self.state
        ac.state_obj = _state_mapping(ac.changes, previous.items())
        self._ac = ac
        self.state = ac.state_obj
        try:
            for group in self.param_groups:
                self._register_group(group, previous)
        except BaseException:
            # A state that does not fit (wrong sizes, missing tensors): keep the registration that worked.
            self._ac = old
            self.state = old.state_obj if old is not None else previous
            raise
        ac.seen = ac.changes.count

    def _register_group(self, group: Dict[str, Any], previous) -> None:
        ac = self._ac
        config = self._config(group)
        if ac.core is None:
            ac.core = _core.Optimizer(config)
            ac.core.rounding_seed = self._precision[3]
            index = 0
        else:
            index = ac.core.add_group(config)
        ac.pushed.append(self._hyper(group))
        for p in group["params"]:
            self._register_param(p, index, config, previous.get(p))

    def _register_param(self, p: torch.Tensor, group: int, config: _core.Config, saved: Optional[dict]) -> None:
        ac = self._ac
        alias = _local(p).detach()
        # torch's Adagrad fills new state with the constructor's initial_accumulator_value, whatever the group says
        # (its state at construction was made by torch itself and is adopted below).
        fill = float(self.defaults.get("initial_accumulator_value", 0.0)) if config.algorithm == _core.ADAGRAD else 0.0
        # State memory from numpy's allocator, which asks Linux for transparent huge pages on large buffers
        # (torch's does not by default): the step streams it faster out of cache. 16-bit state: torch's.
        state_dtype = self._state_dtype(alias.dtype)
        shape = tuple(alias.shape)
        if state_dtype in _SIXTEEN_BIT:
            slots = {name: torch.full(shape, fill if name == "sum" else 0.0, dtype=state_dtype)
                     for name in config.state_names}
        else:
            dtype = np.float32 if state_dtype == torch.float32 else np.float64
            slots = {name: torch.from_numpy(np.full(shape, fill if name == "sum" else 0.0, dtype))
                     for name in config.state_names}
        master = None
        if self._precision[1] and alias.dtype in _SIXTEEN_BIT:
            master = torch.from_numpy(np.empty(shape, np.float32))
            master.copy_(alias)
        i = len(ac.records)
        layout = self._layout(alias, state_dtype, master)
        if layout is None:
            ac.core.add_tensor(group, _raw(alias), [_raw(s) for s in slots.values()])
        else:
            ac.core.add_tensor(group, _raw(alias), [_raw(s) for s in slots.values()], layout)
        ac.core.torch_bind(i, p, alias.dtype, _is_dtensor(p), torch.strided)
        record = _Record(p, alias, slots, fill, master)
        ac.records.append(record)
        if ac.steps_np is not None and i >= len(ac.steps_np):
            self._grow_steps()
        self._adopt(i, saved)

    def _grow_steps(self) -> None:
        ac = self._ac
        steps_t = torch.zeros(2 * len(ac.steps_np), dtype=ac.step_dtype)
        steps_t[: len(ac.steps_np)] = ac.steps_t
        ac.steps_t, ac.steps_np = steps_t, steps_t.numpy()
        for i, r in enumerate(ac.records):
            if r.exposed is not None:
                dict.__setitem__(r.exposed, "step", ac.steps_t[i])
                r.entries["step"] = ac.steps_t[i]

    def _adopt(self, i: int, saved: Optional[dict]) -> None:
        """Makes tensor i's state what `saved` says: a state entry in torch's layout, or None or {} for none (then
        the state starts afresh, as torch's does after `del opt.state[p]`)."""
        ac = self._ac
        record = ac.records[i]
        fresh = not saved or (not self._keeps_step and saved.get("momentum_buffer") is None)
        exact = (getattr(self, "_exact_state", None) or {}).get(i)
        if not fresh and exact is not None:
            # load_state_dict's values before torch cast them to the parameter's dtype (see load_state_dict).
            saved = {**saved, **{k: v for k, v in exact.items() if isinstance(v, torch.Tensor) and k != "step"}}
        if record.master is not None:
            # A saved master (adamcore's state_dict) is taken; otherwise (fresh, or torch.optim's state) the master
            # starts as the parameter's value.
            saved_master = None if fresh else saved.get("master_param")
            if isinstance(saved_master, torch.Tensor):
                record.master.copy_(_local(saved_master).detach().reshape(record.master.shape))
            else:
                record.master.copy_(record.alias)
        if fresh:
            for name, buf in record.slots.items():
                buf.fill_(record.fill if name == "sum" else 0.0)
            step = 0
        else:
            for name, buf in record.slots.items():
                value = saved.get(name)
                if not isinstance(value, torch.Tensor):
                    raise ValueError(f"state of parameter {i} has no tensor '{name}' (keys: {sorted(saved)})")
                value = _local(value)   # a DTensor's shard: this rank's part of the state
                if value.numel() != buf.numel():
                    raise ValueError(f"state[{i}]['{name}'] has {value.numel()} elements, the parameter "
                                     f"{buf.numel()}")
                if value is not buf:
                    buf.copy_(value.detach().reshape(buf.shape))
            step = _step_value(saved.get("step"), i) if self._keeps_step else 1
        if ac.steps_np is not None:
            ac.steps_np[i] = step
        ac.core.set_tensor_step(i, step)
        record.exposed = record.entries = None
        if not fresh:
            self._expose(i)

    def _expose(self, i: int) -> None:
        """Places tensor i's state in self.state in torch's layout (its tensors are the library's memory)."""
        ac = self._ac
        record = ac.records[i]
        entries: Dict[str, Any] = {}
        if self._keeps_step:
            entries["step"] = ac.steps_t[i]
        p = record.param
        for name in self._slot_order(record.slots):
            buf = record.slots[name]
            if _is_dtensor(p):  # torch keeps a sharded parameter's state sharded alike (FSDP2 checkpoints rely on it)
                buf = type(p).from_local(buf, p.device_mesh, p.placements, run_check=False, shape=p.size(),
                                         stride=p.stride())
            entries[name] = buf
        if record.master is not None:
            entries["master_param"] = record.master
        record.entries = entries
        record.exposed = _param_state(ac.changes, entries)
        collections.defaultdict.__setitem__(self.state, record.param, record.exposed)

    # -- torch.optim.Optimizer protocol -------------------------------------------------------------------------
    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if self._ac is not None:
            group = self.param_groups[-1]
            try:
                self._check_group(group)
                self._register_group(group, self.state)
            except Exception:
                self.param_groups.pop()
                self._rebuild()
                raise

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state.pop("_ac", None)
        state.pop("_exact_state", None)
        state["_precision"] = self._precision   # torch's own __getstate__ keeps only its three attributes
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """torch.optim's, except that state keeps its saved precision: torch casts every floating-point state tensor
        to its parameter's dtype while loading, which would round the float32 state and master weights of a 16-bit
        parameter to 16 bits. (Each buffer is then copied into the dtype adamcore keeps it in.)"""
        order = list(chain.from_iterable(g["params"] for g in state_dict.get("param_groups", [])))
        saved = state_dict.get("state", {})
        self._exact_state = {i: saved[k] for i, k in enumerate(order) if isinstance(saved.get(k), dict)}
        try:
            super().load_state_dict(state_dict)
        finally:
            self._exact_state = None

    def __setstate__(self, state: Dict[str, Any]) -> None:
        # torch.optim's own __setstate__ (old state_dict formats: a float 'step' becomes a tensor) runs first; it
        # is also how load_state_dict installs what it loaded.
        self.__dict__.setdefault("_ac", None)
        self._precision = state.pop("_precision", getattr(self, "_precision", (None, False, False, 0)))
        super().__setstate__(state)
        self._rebuild()

    def state_dict(self) -> Dict[str, Any]:
        self._reconcile_if_changed()
        saved = super().state_dict()
        # Plain dicts, as torch's: torch.load(weights_only=True) admits no other mapping type.
        saved["state"] = {k: dict(v) if isinstance(v, dict) else v for k, v in saved["state"].items()}
        return saved

    def _reconcile_if_changed(self) -> None:
        ac = self._ac
        if self.state is not ac.state_obj or ac.changes.count != ac.seen:
            self._reconcile()

    def _reconcile(self) -> None:
        """Brings the library's state in line with edits of self.state (deleted or replaced entries, replaced
        tensors): torch reads self.state at every step, so adamcore must too."""
        ac = self._ac
        if self.state is not ac.state_obj:  # the whole mapping was replaced
            previous = self.state
            ac.state_obj = _state_mapping(ac.changes, previous.items())
            self.state = ac.state_obj
        for i, record in enumerate(ac.records):
            current = dict.get(self.state, record.param)
            if record.exposed is not None:
                if not record.intact(current):
                    self._adopt(i, current)   # deleted (fresh state) or edited (its values taken)
            elif current:
                self._adopt(i, current)       # state placed there from outside
        ac.seen = ac.changes.count

    def _push_hyperparameters(self) -> None:
        ac = self._ac
        for g, group in enumerate(self.param_groups):
            values = self._hyper(group)
            if values != ac.pushed[g]:
                ac.core.set_config(g, self._config(group))
                ac.pushed[g] = values

    def _amp(self):
        # GradScaler hands fused optimizers the scale and found_inf as attributes (torch's protocol).
        scale, found = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        return (1.0 if scale is None else float(scale)), (False if found is None else bool(float(found) > 0))

    def step(self, *args, **kwargs):
        """One step of every parameter that has a gradient (``closure`` as in torch.optim). This is torch's own
        hook protocol (global and per-optimizer step pre/post hooks, in torch's order, with torch's arguments),
        written out so that a profiler range is opened only while a profiler records."""
        if _profiler_enabled():
            with torch.autograd.profiler.record_function(f"Optimizer.step#{type(self).__name__}.step"):
                return self._hooked_step((self, *args), kwargs)
        return self._hooked_step((self, *args), kwargs)
    step.hooked = True  # tells torch.optim.Optimizer not to wrap it again

    def _hooked_step(self, args: tuple, kwargs: Dict[str, Any]):
        for pre_hook in chain(_global_optimizer_pre_hooks.values(), self._optimizer_step_pre_hooks.values()):
            result = pre_hook(self, args, kwargs)
            if result is not None:
                if isinstance(result, tuple) and len(result) == 2:
                    args, kwargs = result
                else:
                    raise RuntimeError(f"{self.step} must return None or a tuple of (new_args, new_kwargs), but got "
                                       f"{result}.")
        out = type(self)._step(*args, **kwargs)
        self._optimizer_step_code()
        for post_hook in chain(self._optimizer_step_post_hooks.values(), _global_optimizer_post_hooks.values()):
            post_hook(self, args, kwargs)
        return out

    def _step(self, closure: Optional[Callable[[], Any]] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._reconcile_if_changed()
        ac = self._ac
        if len(self.param_groups) != len(ac.pushed):
            self._rebuild()
            ac = self._ac
        self._push_hyperparameters()
        grad_scale, found_inf = self._amp()
        for _ in range(3):
            code, payload = ac.core.torch_step([g["params"] for g in self.param_groups], ac.steps_np, grad_scale,
                                               found_inf)
            if code >= 0:
                break
            if code == -1:   # the parameter lists were edited
                self._rebuild()
            else:            # some parameters' storage moved (p.data = ...)
                self._follow(payload)
            ac = self._ac
            self._push_hyperparameters()
        if code == 1 and payload:   # the first step of these parameters: torch creates their state now
            for i in payload:
                if ac.records[i].exposed is None and (ac.records[i].slots or self._keeps_step):
                    self._expose(i)
        return loss

    def _follow(self, moved: List[int]) -> None:
        """Parameters whose storage was replaced: the same dtype and size keep their registration; anything else
        registers everything anew (state converted as torch's load_state_dict would)."""
        ac = self._ac
        for i in moved:
            record = ac.records[i]
            t = _local(record.param)
            same = t.dtype == record.alias.dtype and t.shape == record.alias.shape and t.is_contiguous() \
                and t.device.type == "cpu"
            if not same:
                for group in self.param_groups:
                    self._check_group(group)
                self._rebuild()   # state copied from the old buffers, cast to the new dtype
                return
            alias = t.detach()
            ac.core.set_tensor_param(i, _raw(alias))
            record.alias = alias
            if record.master is not None:
                record.master.copy_(alias)   # the new values are the parameter now, not the old master's


def _step_value(step: Any, i: int) -> int:
    value = float(step) if step is not None else 0.0
    if not (value >= 0 and value == int(value)):
        raise ValueError(f"state of parameter {i}: 'step' is {step!r}, not a whole number of steps")
    return int(value)


def _adam_slots(slots: dict) -> List[str]:
    return [k for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if k in slots]


class Adam(_AdamCoreOptimizer, torch.optim.Adam):
    """torch.optim.Adam (and AMSGrad with amsgrad=True, AdamW's rule with decoupled_weight_decay=True)."""
    _make_config = staticmethod(_configs.adam)
    _hyper_keys = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
    _slot_order = staticmethod(_adam_slots)


class AdamW(_AdamCoreOptimizer, torch.optim.AdamW):
    """torch.optim.AdamW (its groups carry decoupled_weight_decay=True)."""
    _make_config = staticmethod(_configs.adam)
    _hyper_keys = Adam._hyper_keys
    _slot_order = staticmethod(_adam_slots)


class SGD(_AdamCoreOptimizer, torch.optim.SGD):
    """torch.optim.SGD (momentum, dampening, Nesterov)."""
    _make_config = staticmethod(_configs.sgd)
    _hyper_keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    _slot_order = staticmethod(lambda slots: [k for k in ("momentum_buffer",) if k in slots])
    _keeps_step = False


class RMSprop(_AdamCoreOptimizer, torch.optim.RMSprop):
    """torch.optim.RMSprop (momentum, centered)."""
    _make_config = staticmethod(_configs.rmsprop)
    _hyper_keys = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")
    _slot_order = staticmethod(lambda slots: [k for k in ("square_avg", "momentum_buffer", "grad_avg") if k in slots])


class Adagrad(_AdamCoreOptimizer, torch.optim.Adagrad):
    """torch.optim.Adagrad (lr_decay, initial_accumulator_value)."""
    _make_config = staticmethod(_configs.adagrad)
    _hyper_keys = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")
    _slot_order = staticmethod(lambda slots: [k for k in ("sum",) if k in slots])


class AdaFix(torch.optim.Optimizer):
    """AdaFix (seed 001) for torch parameters: Adam whose second moment is held fixed once max|g| < L*lr.

    Every parameter must have a gradient at each step (the gate is one decision over all of them). Its state (m, v,
    and the step) is in ``state[p]`` as torch's Adam keeps it; L and the gate travel with deepcopy and pickling.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False,
                 next_gradient=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      next_gradient=next_gradient))
        self._build()

    def _build(self) -> None:
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64) or not p.is_contiguous():
                    raise TypeError("adamcore.torch.AdaFix needs contiguous CPU float32/float64 parameters, got "
                                    f"{p.dtype} on {p.device}")
            groups.append({**{k: _scalar(v) for k, v in group.items() if k != "params"},
                           "params": [p.detach().numpy() for p in group["params"]]})
        saved = dict(self.state)
        self._inner = _optim.AdaFix(groups)
        self._flat = [p for group in self.param_groups for p in group["params"]]
        self._steps = torch.zeros(len(self._flat), dtype=torch.float32)  # one buffer: no tensor per step
        for index, p in enumerate(self._flat):
            entry = {"step": self._steps[index]}
            entry.update({name: torch.from_numpy(array) for name, array in self._inner.state[index].items()})
            for name, value in (saved.get(p) or {}).items():
                if name != "step":
                    entry[name].copy_(value)
            self.state[p] = entry
        steps = {int(float(e["step"])) for e in saved.values() if "step" in e}
        if len(steps) > 1:
            raise ValueError("AdaFix: every parameter must have the same step count")
        if steps:
            self._inner._core.step_count = steps.pop()
        self._steps.fill_(float(self._inner.step_count))

    def __getstate__(self) -> Dict[str, Any]:
        state = super().__getstate__()
        state["adafix"] = {"lipschitz": self._inner.lipschitz, "step_norm_sq": self._inner._core.adafix_step_norm_sq}
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        scalars = state.pop("adafix", None)
        super().__setstate__(state)
        self._build()
        if scalars is not None:
            self._inner._core.lipschitz = scalars["lipschitz"]
            self._inner._core.adafix_step_norm_sq = scalars["step_norm_sq"]

    def _gradients(self):
        grads = []
        for index, p in enumerate(self._flat):
            if p.grad is None:
                raise RuntimeError(f"AdaFix: parameter {index} has no gradient; its gate is one decision over all "
                                   "parameters, so every parameter needs one at each step")
            grads.append(p.grad.detach().contiguous().numpy())
        return grads

    def step(self, closure: Optional[Callable[[], Any]] = None):
        inner = self._inner
        if not inner.next_gradient and closure is None:
            raise TypeError("adamcore.torch.AdaFix.step needs a closure (it is evaluated again at the new parameters "
                            "for the Lipschitz estimate), or construct it with next_gradient=True")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for mine, theirs in zip(self.param_groups, inner.param_groups):
            for key in ("lr", "betas", "eps", "weight_decay"):
                theirs[key] = _scalar(mine[key])
        grads = [g.copy() for g in self._gradients()]  # the closure below overwrites p.grad

        def new_gradients():
            with torch.enable_grad():
                closure()
            return self._gradients()

        inner.step(grads, grad_fn=None if inner.next_gradient else new_gradients)
        self._steps.fill_(float(inner.step_count))
        return loss
