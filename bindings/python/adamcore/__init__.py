"""adamcore: in-place SIMD optimizer steps (Adam, AdamW, AMSGrad, AdaFix, SGD, RMSprop, AdaGrad) for numpy arrays
and anything else with the buffer protocol, computed by the adamcore C library with the GIL released.

    opt = adamcore.Adam([w, b], lr=1e-3)
    opt.step([grad_w, grad_b])          # updates w and b in place

Fast stateless path: ``cfg = adamcore.configs.adam(lr=1e-3)`` once, then ``adamcore.step(cfg, t, p, g, m, v)``.
"""
from . import _configs as configs
from ._core import AdamCoreError, Config, get_num_threads, library_version, set_num_threads, step
from .functional import adafix_lipschitz, adafix_step, adagrad_step, adam_step, rmsprop_step, sgd_step
from .optim import SGD, Adagrad, AdaFix, Adam, AdamW, Optimizer, RMSprop
from .diagnostics import AdamCoreAdvisory, Advisory, StepStats, advise

__version__: str = library_version

__all__ = ["Adam", "AdamW", "AdaFix", "SGD", "RMSprop", "Adagrad", "Optimizer", "Config", "AdamCoreError", "step",
           "adam_step", "adafix_step", "adafix_lipschitz", "sgd_step", "rmsprop_step", "adagrad_step", "configs",
           "set_num_threads", "get_num_threads", "advise", "Advisory", "AdamCoreAdvisory", "StepStats",
           "__version__"]
