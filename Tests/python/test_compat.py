"""Checkpoints of 0.1.0 (format version 1) in today's library (format version 2, per-tensor steps).

The fixtures in Tests/fixtures/v0.1.0 were written by Tests/fixtures/make_v010_fixtures.py with the 0.1.0 library:
K steps from a fixed start, the checkpoint (<tag>.safetensors) and the parameters at step K (param_k.<i>), then M
more steps and the parameters and state at K + M (param_end.<i>, state_end.<i>.<slot>, in <tag>.npz). Loading
the checkpoint here and continuing M steps must reproduce 0.1.0's uninterrupted run bit for bit.
"""
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

import adamcore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "v0.1.0"


def _fixture_script():
    """make_v010_fixtures.py itself: its constructions, sizes, step counts and gradients are the ones to repeat."""
    spec = importlib.util.spec_from_file_location("make_v010_fixtures", FIXTURES.parent / "make_v010_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_script = _fixture_script()
K, M, SIZES, CASES, grads = _script.K, _script.M, _script.SIZES, _script.CASES, _script.grads
DTYPES = (np.float32, np.float64)
FIXTURE_CASES = [pytest.param(name, dtype, id=f"{name}_{np.dtype(dtype).name}") for name in CASES for dtype in DTYPES]
# The cases that can step a proper subset (AdaFix's gate is global: it must list all its tensors).
SUBSET_CASES = [p for p in FIXTURE_CASES if not p.values[0].startswith("adafix")]
# The cases whose update depends on the step count (bias correction, lr_decay), where a wrong count shows.
COUNTED = {"adam", "amsgrad_w", "adagrad"}


def tag(name, dtype):
    return f"{name}_{np.dtype(dtype).name}"


def header(data: bytes) -> dict:
    """The safetensors JSON header: an 8-byte little-endian length, then the JSON."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) and a.tobytes() == b.tobytes()


def loaded(name, dtype):
    """An optimizer built as the fixture script builds it over the stored step-K parameters, with the 0.1.0
    checkpoint loaded; and the stored arrays."""
    stored = np.load(FIXTURES / f"{tag(name, dtype)}.npz")
    params = [stored[f"param_k.{i}"].copy() for i in range(len(SIZES))]
    for p, n in zip(params, SIZES):
        assert p.dtype == dtype and p.shape == (n,)
    opt = CASES[name](params)
    opt.load(str(FIXTURES / f"{tag(name, dtype)}.safetensors"))
    return opt, params, stored


def tensor_steps(opt):
    return [opt._core.get_tensor_step(i) for i in range(len(opt.state))]


def snapshot(opt, params):
    return ([p.copy() for p in params], {i: {k: v.copy() for k, v in s.items()} for i, s in opt.state.items()},
            opt.checkpoint_bytes(), tensor_steps(opt), opt.step_count, opt.skipped_steps)


def assert_unchanged(opt, params, before):
    p0, s0, ck0, steps0, count0, skipped0 = before
    assert all(same_bits(a, b) for a, b in zip(params, p0)), "a parameter changed"
    for i, slots in opt.state.items():
        for k, v in slots.items():
            assert same_bits(v, s0[i][k]), f"state {i}.{k} changed"
    assert opt.checkpoint_bytes() == ck0
    assert tensor_steps(opt) == steps0 and opt.step_count == count0 and opt.skipped_steps == skipped0


def test_every_fixture_is_there():
    for name in CASES:
        for dtype in DTYPES:
            for ext in ("safetensors", "npz"):
                assert (FIXTURES / f"{tag(name, dtype)}.{ext}").is_file(), f"missing fixture {tag(name, dtype)}.{ext}"


@pytest.mark.parametrize("name,dtype", FIXTURE_CASES)
def test_v010_checkpoint_continues_bit_for_bit(name, dtype):
    data = (FIXTURES / f"{tag(name, dtype)}.safetensors").read_bytes()
    meta = header(data)["__metadata__"]
    assert meta["version"] == "1" and meta["step"] == str(K) and "tensor.0.step" not in meta, "not a 0.1.0 file"
    opt, params, stored = loaded(name, dtype)
    assert opt.step_count == K
    assert tensor_steps(opt) == [K] * len(SIZES), "a version 1 file gives every tensor the global step"
    for t in range(K + 1, K + M + 1):
        assert opt.step(grads(t, dtype)) is True
    for i, p in enumerate(params):
        assert same_bits(p, stored[f"param_end.{i}"]), f"{tag(name, dtype)}: param {i} differs from 0.1.0's run"
    stored_state = sorted(k for k in stored.files if k.startswith("state_end."))
    assert stored_state == sorted(f"state_end.{i}.{k}" for i, slots in opt.state.items() for k in slots)
    for i, slots in opt.state.items():
        for k, v in slots.items():
            assert same_bits(v, stored[f"state_end.{i}.{k}"]), f"{tag(name, dtype)}: state {i}.{k} differs"
    assert opt.step_count == K + M and tensor_steps(opt) == [K + M] * len(SIZES)


@pytest.mark.parametrize("name,dtype", FIXTURE_CASES)
def test_v010_checkpoint_resaved_is_version_3_with_per_tensor_steps_and_layouts(tmp_path, name, dtype):
    opt, _, _ = loaded(name, dtype)
    path = tmp_path / "resaved.safetensors"
    opt.save(str(path))
    original = FIXTURES / f"{tag(name, dtype)}.safetensors"
    with safe_open(str(path), framework="numpy") as new, safe_open(str(original), framework="numpy") as old:
        meta, old_meta = new.metadata(), old.metadata()
        assert meta["version"] == "3"
        assert meta["step"] == str(K)
        assert meta["tensors"] == str(len(SIZES))
        assert [meta[f"tensor.{i}.step"] for i in range(len(SIZES))] == [str(K)] * len(SIZES)
        # Version 3 adds the rounding seed and each tensor's layout (0.1.0's: every buffer of one dtype).
        code = "F32" if dtype == np.float32 else "F64"
        assert meta["rounding_seed"] == "0"
        for i in range(len(SIZES)):
            assert meta[f"tensor.{i}.layout"] == f"param={code};grad={code};state={code};master=0;copy=none;stochastic=0"
        # Every other metadata entry and every buffer came through unchanged.
        changed = {k for k in set(meta) | set(old_meta) if meta.get(k) != old_meta.get(k)}
        assert changed == {"version", "rounding_seed"} | {f"tensor.{i}.{key}" for i in range(len(SIZES))
                                                          for key in ("step", "layout")}
        assert sorted(new.keys()) == sorted(old.keys())
        for key in old.keys():
            assert same_bits(new.get_tensor(key), old.get_tensor(key)), key
    # The raw header says the same (read without the safetensors package).
    raw = header(path.read_bytes())["__metadata__"]
    assert raw["version"] == "3" and all(raw[f"tensor.{i}.step"] == str(K) for i in range(len(SIZES)))
    assert header(opt.checkpoint_bytes())["__metadata__"] == raw


@pytest.mark.parametrize("name,dtype", FIXTURE_CASES)
def test_unknown_version_is_refused_and_changes_nothing(tmp_path, name, dtype):
    opt, params, _ = loaded(name, dtype)
    assert opt.step(grads(K + 1, dtype)) is True       # state and counts that differ from the file's
    before = snapshot(opt, params)
    for source in ((FIXTURES / f"{tag(name, dtype)}.safetensors").read_bytes(), opt.checkpoint_bytes()):
        version = header(source)["__metadata__"]["version"]
        old = f'"version":"{version}"'.encode()
        assert source.count(old) == 1
        bad = source.replace(old, b'"version":"9"')
        assert header(bad)["__metadata__"]["version"] == "9"
        with pytest.raises(adamcore.AdamCoreError) as info:
            opt.load_bytes(bad)
        assert info.value.name == "ADAMCORE_E_FORMAT" and info.value.status == -34
        assert_unchanged(opt, params, before)
        path = tmp_path / "v9.safetensors"
        path.write_bytes(bad)
        with pytest.raises(adamcore.AdamCoreError) as info:
            opt.load(str(path))
        assert info.value.name == "ADAMCORE_E_FORMAT"
        assert_unchanged(opt, params, before)
    # And the optimizer still works as before: the next step is the one 0.1.0 took.
    stored = np.load(FIXTURES / f"{tag(name, dtype)}.npz")
    for t in range(K + 2, K + M + 1):
        opt.step(grads(t, dtype))
    assert all(same_bits(p, stored[f"param_end.{i}"]) for i, p in enumerate(params))


def subset_schedule(t):
    """Which tensors step at call t: tensor 1 alone, tensor 0 alone, both, or neither (a step of nothing)."""
    return [[1], [0], [0, 1], [1], []][t % 5]


def run_schedule(opt, dtype, calls):
    for t in calls:
        indices = subset_schedule(t)
        g = grads(t, dtype)
        assert opt._core.step_tensors(indices, [g[i] for i in indices], 1.0, False) is True


@pytest.mark.parametrize("name,dtype", SUBSET_CASES)
def test_per_tensor_steps_survive_a_round_trip(tmp_path, name, dtype):
    opt, params, _ = loaded(name, dtype)
    run_schedule(opt, dtype, range(K + 1, K + 11))     # 10 calls: tensor 0 steps 4 times, tensor 1 6 times
    counts = tensor_steps(opt)
    assert counts == [K + 4, K + 6] and opt.step_count == K + 10
    path = tmp_path / "subset.safetensors"
    opt.save(str(path))
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["version"] == "3" and meta["step"] == str(K + 10)
    assert [meta["tensor.0.step"], meta["tensor.1.step"]] == [str(c) for c in counts]

    # A fresh optimizer over copies of the parameters, loaded from the file (and one from the bytes).
    copies = [[p.copy() for p in params] for _ in range(2)]
    resumed = [CASES[name](c) for c in copies]
    resumed[0].load(str(path))
    resumed[1].load_bytes(path.read_bytes())
    for r in resumed:
        assert tensor_steps(r) == counts and r.step_count == K + 10
        assert r.checkpoint_bytes() == opt.checkpoint_bytes()
    control = None
    if name in COUNTED:
        # The same state with both tensors at the global count: continuing must come out different.
        control_params = [p.copy() for p in params]
        control = CASES[name](control_params)
        control.load(str(path))
        for i in range(len(SIZES)):
            control._core.set_tensor_step(i, K + 10)

    # Continue all: more subset calls, then full steps.
    for o in [opt, *resumed] + ([control] if control else []):
        run_schedule(o, dtype, range(K + 11, K + 18))
        for t in range(K + 18, K + 21):
            o.step(grads(t, dtype))
    for r, c in zip(resumed, copies):
        assert all(same_bits(a, b) for a, b in zip(params, c)), "the resumed run's parameters differ"
        for i, slots in opt.state.items():
            for k, v in slots.items():
                assert same_bits(v, r.state[i][k]), f"the resumed run's state {i}.{k} differs"
        assert tensor_steps(r) == tensor_steps(opt) and r.checkpoint_bytes() == opt.checkpoint_bytes()
    assert tensor_steps(opt) == [counts[0] + 2 + 3, counts[1] + 4 + 3]
    if control:
        assert not all(np.array_equal(a, b) for a, b in zip(params, control_params)), \
            "per-tensor counts made no difference: the round trip check has no teeth"
