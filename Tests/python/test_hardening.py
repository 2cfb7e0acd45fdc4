"""Issue 6 from Python: the non-finite guard, AMP's grad_scale and found_inf, safetensors checkpoints."""
import json
import struct

import adamcore
import numpy as np
import pytest

from reference import Problem
from test_behaviour import OPTIMIZERS, check_restore_continues_bit_identically, run


def model(dtype=np.float32):
    problem = Problem([33, 4, 1000], seed=11)
    return problem, [x.astype(dtype) for x in problem.initial]


def snapshot(opt, params):
    return [p.copy() for p in params] + [a.copy() for s in opt.state.values() for a in s.values()]


def unchanged(before, opt, params):
    after = snapshot(opt, params)
    return all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after))


# -- the guard --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_guard_skips_the_whole_step_and_reports_it(bad):
    problem, params = model()
    opt = adamcore.Adam(params, lr=1e-2)
    opt.nonfinite_guard = True
    assert opt.step(problem.grads(1, np.float32)) is True
    grads = problem.grads(2, np.float32)
    grads[2][999] = bad            # the last element of the big tensor: the SIMD tail
    grads[0][3] = bad
    before = snapshot(opt, params)
    assert opt.step(grads) is False
    assert unchanged(before, opt, params)
    assert opt.step_count == 1 and opt.skipped_steps == 1 and opt.last_nonfinite_count == 2
    assert opt.step(problem.grads(2, np.float32)) is True and opt.step_count == 2
    assert opt.last_nonfinite_count == 0, "a clean step resets the count"
    opt.nonfinite_guard = False
    opt.step(grads)                 # unguarded: the NaN goes in, nothing is counted
    assert opt.last_nonfinite_count == 0 and opt.step_count == 3


def test_without_the_guard_a_nan_stays_in_its_element():
    problem, params = model()
    _, twin = model()
    a, b = adamcore.Adam(params, lr=1e-2), adamcore.Adam(twin, lr=1e-2)
    for t in range(1, 6):
        grads = problem.grads(t, np.float32)
        b.step([g.copy() for g in grads])
        if t == 3:
            grads[1][2] = np.nan
        a.step(grads)
    assert np.isnan(params[1][2]) and np.isnan(a.state[1]["exp_avg"][2])
    mask = np.ones(4, bool)
    mask[2] = False
    assert np.array_equal(params[1][mask], twin[1][mask])
    assert np.array_equal(params[0], twin[0]) and np.array_equal(params[2], twin[2])


# -- AMP ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,cls,kwargs", [o for o in OPTIMIZERS if o[1] is not adamcore.AdaFix],
                         ids=[o[0] for o in OPTIMIZERS if o[1] is not adamcore.AdaFix])
@pytest.mark.parametrize("scale", [2.0 ** 16, 2.0 ** -3])
def test_grad_scale_of_a_power_of_two_is_exactly_the_unscaled_step(name, cls, kwargs, scale):
    problem, plain = model()
    _, scaled = model()
    a, b = cls(plain, weight_decay=0.01, **kwargs), cls(scaled, weight_decay=0.01, **kwargs)
    for t in range(1, 30):
        grads = problem.grads(t, np.float32)
        a.step(grads)
        b.step([g * np.float32(scale) for g in grads], grad_scale=scale)
    for x, y in zip(plain, scaled):
        assert np.array_equal(x, y), name


def test_found_inf_skips_and_adafix_refuses_a_grad_scale():
    problem, params = model()
    opt = adamcore.AdamW(params)
    before = snapshot(opt, params)
    assert opt.step(problem.grads(1, np.float32), found_inf=True) is False
    assert unchanged(before, opt, params) and opt.step_count == 0 and opt.skipped_steps == 1
    with pytest.raises(adamcore.AdamCoreError) as info:
        opt.step(problem.grads(1, np.float32), grad_scale=0.0)
    assert info.value.name == "ADAMCORE_E_GRAD_SCALE"
    fix = adamcore.AdaFix([p.copy() for p in params], next_gradient=True)
    with pytest.raises(TypeError):
        fix.step(problem.grads(1, np.float32), grad_scale=2.0)
    assert fix.step(problem.grads(1, np.float32), found_inf=True) is False and fix.step_count == 0


# -- checkpoints ----------------------------------------------------------------------------------------------

def read_safetensors(path):
    """A reader written from the format's description: u64 header length, JSON header, raw buffers."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__")
    arrays = {}
    for name, entry in header.items():
        start, end = entry["data_offsets"]
        dtype = {"F32": "<f4", "F64": "<f8"}[entry["dtype"]]
        arrays[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(entry["shape"])
    return meta, arrays


@pytest.mark.parametrize("name,cls,kwargs", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_save_load_continue_is_bit_identical(name, cls, kwargs, tmp_path):
    path = tmp_path / "opt.safetensors"

    def through_a_file(a, b):
        a.save(path)
        b.load(path)
    check_restore_continues_bit_identically(name, cls, kwargs, through_a_file, steps=60)


def test_checkpoint_is_plain_safetensors(tmp_path):
    problem, params = model(np.float64)
    opt = adamcore.AdaFix(params, lr=1e-2, next_gradient=True)
    for t in range(1, 8):
        opt.step(problem.smooth_grads(t, np.float64))
    path = str(tmp_path / "fix.safetensors")
    opt.save(path)
    meta, arrays = read_safetensors(path)
    assert meta["format"] == "adamcore-optimizer" and meta["algorithm"] == "adafix" and meta["step"] == "7"
    assert float(meta["lipschitz"]) == opt.lipschitz
    assert sorted(arrays) == sorted(f"tensor.{i}.{s}" for i in opt.state for s in opt.state[i])
    for i, slots in opt.state.items():
        for slot, array in slots.items():
            assert np.array_equal(arrays[f"tensor.{i}.{slot}"], array)
    from safetensors.numpy import load_file   # the format's own reader agrees
    theirs = load_file(path)
    assert sorted(theirs) == sorted(arrays) and all(np.array_equal(theirs[k], arrays[k]) for k in arrays)
    assert opt.checkpoint_bytes() == open(path, "rb").read()


def test_bad_checkpoints_change_nothing(tmp_path):
    problem, params = model()
    opt = adamcore.Adam(params, lr=1e-2)
    opt.step(problem.grads(1, np.float32))
    good = opt.checkpoint_bytes()
    opt.step(problem.grads(2, np.float32))
    before = snapshot(opt, params)
    header_end = 8 + struct.unpack("<Q", good[:8])[0]
    cases = {
        "truncated": (good[:-1], "ADAMCORE_E_FORMAT"),
        "empty": (b"", "ADAMCORE_E_FORMAT"),
        "garbage header": (good[:8] + b"x" * (header_end - 8) + good[header_end:], "ADAMCORE_E_FORMAT"),
        "huge header length": (struct.pack("<Q", 2 ** 63) + good[8:], "ADAMCORE_E_FORMAT"),
        "other algorithm": (good.replace(b'"algorithm":"adam"', b'"algorithm":"sgd" '), "ADAMCORE_E_MISMATCH"),
        "other dtype": (good.replace(b'"dtype":"F32"', b'"dtype":"I32"', 1), "ADAMCORE_E_MISMATCH"),
    }
    for label, (data, status) in cases.items():
        with pytest.raises(adamcore.AdamCoreError) as info:
            opt.load_bytes(data)
        assert info.value.name == status, label
        assert unchanged(before, opt, params) and opt.step_count == 2, label
    with pytest.raises(OSError):
        opt.load(tmp_path / "missing.safetensors")
    other = adamcore.Adam([p.copy() for p in params[:2]])
    with pytest.raises(adamcore.AdamCoreError, match="does not match"):
        other.load_bytes(good)
    opt.load_bytes(good)
    assert opt.step_count == 1
