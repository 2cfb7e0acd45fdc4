"""Type stubs for the C extension (adamcore/_core.c)."""
from typing import Any, Sequence, Tuple

ADAM: int
ADAFIX: int
SGD: int
RMSPROP: int
ADAGRAD: int
FLOAT32: int
FLOAT64: int
FLAG_MAXIMIZE: int
FLAG_AMSGRAD: int
FLAG_AMSGRAD_OPTAX_ORDER: int
FLAG_DECOUPLED_WEIGHT_DECAY: int
FLAG_NO_BIAS_CORRECTION: int
FLAG_NESTEROV: int
FLAG_CENTERED: int
FLAG_ADAFIX_NEXT_GRADIENT: int
library_version: str
header_version: str
active_isa: int

class AdamCoreError(ValueError):
    status: int
    name: str

class Config:
    def __init__(self, algorithm: int, flags: int = 0, *, lr: float = ..., beta1: float = ..., beta2: float = ...,
                 eps: float = ..., eps_root: float = ..., weight_decay: float = ..., momentum: float = ...,
                 dampening: float = ..., alpha: float = ..., lr_decay: float = ...,
                 initial_accumulator_value: float = ...) -> None: ...
    @property
    def algorithm(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def state_names(self) -> Tuple[str, ...]: ...
    lr: float
    beta1: float
    beta2: float
    eps: float
    eps_root: float
    weight_decay: float
    momentum: float
    dampening: float
    alpha: float
    lr_decay: float
    initial_accumulator_value: float

class Optimizer:
    def __init__(self, config: Config) -> None: ...
    def add_group(self, config: Config) -> int: ...
    def set_config(self, group: int, config: Config) -> None: ...
    def add_tensor(self, group: int, param: Any, state: Sequence[Any]) -> int: ...
    def step(self, grads: Sequence[Any]) -> None: ...
    def adafix_observe(self, grads: Sequence[Any], new_grads: Sequence[Any]) -> None: ...
    step_count: int
    lipschitz: float
    adafix_step_norm_sq: float
    @property
    def v_updated(self) -> bool: ...
    @property
    def tensor_count(self) -> int: ...

def step(config: Config, t: int, param: Any, grad: Any, *state: Any) -> None: ...
def adafix_step(config: Config, t: int, param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any,
                lipschitz: float) -> Tuple[float, float, bool]: ...
def adafix_lipschitz(grad: Any, new_grad: Any, step_norm_sq: float, lipschitz: float) -> float: ...
def status_name(code: int) -> str: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _gil_held_in_last_kernel() -> int: ...
