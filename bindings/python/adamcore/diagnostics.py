"""Step statistics and hyperparameter advice (seeds 000-003): what the optimizer is doing, and what a setting implies."""
from __future__ import annotations

import dataclasses
import warnings
from typing import List, Tuple

from . import _configs, _core


class AdamCoreAdvisory(UserWarning):
    """Warnings from :func:`advise` at optimizer construction; silence with
    ``warnings.simplefilter("ignore", adamcore.AdamCoreAdvisory)``."""


@dataclasses.dataclass(frozen=True)
class StepStats:
    """One step's figures for a tensor or (with ``tensors``) the whole optimizer. See adamcore_step_stats."""
    step: int
    count: int
    nonfinite_grads: int
    max_step_over_lr: float       # max |m_hat / (sqrt(v_hat) + eps)|: the adaptive step in multiples of lr
    step_bound: float             # seed 000 Proposition 1: the most that ratio can be
    min_effective_lr: float       # lr / (sqrt(v_hat) + eps) over the elements
    max_effective_lr: float
    mean_effective_lr: float
    m_norm: float
    v_norm: float
    step_norm: float              # ||p_new - p_old||
    adafix_v_frozen: bool
    lipschitz: float
    tensors: Tuple["StepStats", ...] = ()

    @property
    def step_to_bound(self) -> float:
        """max_step_over_lr / step_bound: at most 1 for Adam (seed 000); NaN when there is no finite bound
        (beta1 >= sqrt(beta2)) or no step yet."""
        if not (0 < self.step_bound < float("inf")):
            return float("nan")
        return self.max_step_over_lr / self.step_bound


_STATS_FIELDS = tuple(f.name for f in dataclasses.fields(StepStats) if f.name != "tensors")


def _from_core(fields: "_core.StepStatsFields", tensors: Tuple[StepStats, ...] = ()) -> StepStats:
    return StepStats(**{name: getattr(fields, name) for name in _STATS_FIELDS}, tensors=tensors)


def _stats(core: "_core.Optimizer") -> StepStats:
    tensors = tuple(_from_core(core.get_stats(i)) for i in range(core.tensor_count))
    return _from_core(core.get_stats(-1), tensors)


SEVERITIES = {0: "info", 1: "notice", 2: "warning"}
CODES = {1: "max_step", 2: "flat_crossing", 3: "beta1_above_sqrt_beta2", 4: "small_beta2", 5: "spike_regime",
         6: "oscillation_regime", 7: "divergence_regime", 8: "eps_underflow"}
_PRECISIONS = {"float32": _core.FLOAT32, "float64": _core.FLOAT64, "float16": _core.FLOAT16,
               "bfloat16": _core.BFLOAT16}


@dataclasses.dataclass(frozen=True)
class Advisory:
    code: str          # e.g. "beta1_above_sqrt_beta2"
    severity: str      # "info", "notice" or "warning"
    value: float       # the figure it is about (a bound in multiples of lr, a ratio, eps)
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.code} = {self.value:.4g}: {self.message}"


def advise_config(config: "_core.Config", dtype: str = "float32") -> List[Advisory]:
    if dtype not in _PRECISIONS:
        raise ValueError(f"dtype must be one of {sorted(_PRECISIONS)}, got {dtype!r}")
    return [Advisory(CODES[c], SEVERITIES[s], v, m) for c, s, v, m in _core.advise(config, _PRECISIONS[dtype])]


def advise(algorithm: str, *, dtype: str = "float32", **hyperparameters) -> List[Advisory]:
    """Advice for ``algorithm`` ("adam", "adamw", "adafix", "rmsprop", "sgd", "adagrad") with torch's names,
    e.g. ``advise("adam", lr=1e-3, betas=(0.9, 0.999))``; ``dtype`` is the precision the state is kept in."""
    builders = {"adam": _configs.adam, "adafix": _configs.adafix, "rmsprop": _configs.rmsprop, "sgd": _configs.sgd,
                "adagrad": _configs.adagrad,
                "adamw": lambda **kw: _configs.adam(**{"weight_decay": 1e-2, **kw}, decoupled_weight_decay=True)}
    if algorithm not in builders:
        raise ValueError(f"unknown algorithm {algorithm!r}; one of {sorted(builders)}")
    return advise_config(builders[algorithm](**hyperparameters), dtype)


def warn_on_construction(configs, owner: str, dtype: str) -> None:
    for config in configs:
        for advisory in advise_config(config, dtype):
            if advisory.severity == "warning":
                warnings.warn(f"{owner}: {advisory}", AdamCoreAdvisory, stacklevel=4)
