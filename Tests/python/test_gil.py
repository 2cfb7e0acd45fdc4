"""Kernels run with the GIL released: a deterministic probe, PyGILState_Check() recorded inside each released region.
Each read clears the probe, so each assertion proves a record made by the step just before it. Runs against the test build of the extension (build/python-hooks, compiled with ADAMCORE_TEST_HOOKS); make
test-python runs this file there, and the other files against the production module, which has no such probe."""
import adamcore
import numpy as np
import torch
from adamcore import _core

import adamcore.torch as adamcore_torch


def test_the_probe_is_cleared_by_each_read():
    _core._gil_held_in_last_kernel()
    assert _core._gil_held_in_last_kernel() == -1  # nothing ran since the last read


def test_numpy_object_and_stateless_steps_release_the_gil():
    w = np.ones(1000, np.float32)
    opt = adamcore.Adam([w])
    opt.step([np.ones(1000, np.float32)])
    assert _core._gil_held_in_last_kernel() == 0
    adamcore.adam_step(w, w.copy(), np.zeros_like(w), np.zeros_like(w), step=1)
    assert _core._gil_held_in_last_kernel() == 0
    adamcore.sgd_step(w, np.ones_like(w), step=1, lr=0.1)
    assert _core._gil_held_in_last_kernel() == 0


def test_torch_drop_in_step_releases_the_gil():
    p = torch.nn.Parameter(torch.ones(1000))
    opt = adamcore_torch.AdamW([p], lr=1e-2)
    p.grad = torch.ones(1000)
    opt.step()
    assert _core._gil_held_in_last_kernel() == 0
    assert float(p.detach()[0]) < 1
