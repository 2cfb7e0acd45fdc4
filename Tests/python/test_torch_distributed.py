"""adamcore.torch.AdamW under torch.distributed, against torch.optim.AdamW run the same way (CPU, gloo, 2 processes).

* ZeroRedundancyOptimizer(optimizer_class=AdamW) under DistributedDataParallel, with and without
  parameters_as_bucket_view (which rebinds every parameter's ``.data`` to a view of a flat bucket after the
  optimizer was built), a warmup scheduler on the ZeRO wrapper, and consolidate_state_dict().
* FSDP2 (torch.distributed.fsdp.fully_shard, DTensor parameters, uneven shards and an empty shard on rank 1) with
  gradient clipping, the full optimizer state dict (torch.distributed.checkpoint.state_dict), and a sharded
  torch.distributed.checkpoint save/resume, including resuming adamcore from torch.optim's checkpoint.

The scenarios run in two pairs of worker processes (this file run as a script), launched together from a module
fixture: both sides ("torch" first, then "ours") run in the same workers and write what they saw; the tests
compare. A failure on one side is made symmetric across ranks (no rank waits in a collective for a rank that
raised), so it is reported, with its traceback, by the tests that need that part.
ADAMCORE_TORCH_SELFTEST=1 makes "ours" torch.optim.AdamW too (the tests must pass that way).
"""
from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch

SELFTEST = os.environ.get("ADAMCORE_TORCH_SELFTEST") == "1"
WORLD = 2
STEPS = 12
RESUME_STEPS = 4
KW = dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.05)
TOL = dict(rtol=1e-5, atol=1e-6)
# One pair of workers per group, the groups run at the same time; a group's scenarios run one after the other.
GROUPS = {"zero": ("zero", "zero_bucket_view"), "fsdp2": ("fsdp2",)}
TIMEOUT = 240


# ---------------------------------------------------------------------------------------------------------------
# Worker side


def _classes():
    if SELFTEST:
        return {"torch": torch.optim.AdamW, "ours": torch.optim.AdamW}
    import adamcore.torch as act
    return {"torch": torch.optim.AdamW, "ours": act.AdamW}


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3), torch.nn.Tanh(),
                               torch.nn.Linear(3, 1))


def _batch(t, rank):
    g = torch.Generator().manual_seed(100 * t + rank)
    x = torch.randn(8, 5, generator=g)
    return x, torch.sin(x.sum(1, keepdim=True))


def _warmup(e):
    return min(1.0, (e + 1) / 4)


class _PhaseFailed(Exception):
    pass


def _guarded(fn, what):
    """Run fn on every rank; if it raised on any rank, raise on all (so no rank is left waiting in a collective)."""
    import torch.distributed as dist
    err, out = None, None
    try:
        out = fn()
    except BaseException as e:  # noqa: BLE001 - torch.distributed.checkpoint's CheckpointException is a BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        err = f"{what}: " + traceback.format_exc()
    flag = torch.tensor([0 if err is None else 1])
    dist.all_reduce(flag)
    if int(flag) != 0:
        raise _PhaseFailed(err or f"{what} failed on another rank")
    return out


def _zero(cls, rank, bucket_view):
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP
    model = _model()
    ddp = DDP(model)
    opt = _guarded(lambda: ZeroRedundancyOptimizer(model.parameters(), optimizer_class=cls,
                                                   parameters_as_bucket_view=bucket_view, **KW), "construction")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup)
    out = {"losses": []}
    for t in range(STEPS):
        opt.zero_grad()
        x, y = _batch(t, rank)
        loss = torch.nn.functional.mse_loss(ddp(x), y)
        loss.backward()
        _guarded(opt.step, f"step {t}")
        sched.step()
        out["losses"].append(loss.item())
    out["params"] = [p.detach().clone() for p in model.parameters()]
    out["local_state_types"] = sorted({type(v).__name__ for s in opt.optim.state.values() for v in s.values()})
    _guarded(lambda: opt.consolidate_state_dict(to=0), "consolidate_state_dict")
    if rank == 0:
        out["state_dict"] = opt.state_dict()
    return out


def _fsdp2_model(mesh):
    from torch.distributed.fsdp import fully_shard
    model = _model()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _fsdp2_train(model, opt, sched, rank, start, stop, losses):
    for t in range(start, stop):
        opt.zero_grad()
        x, y = _batch(t, rank)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
        _guarded(opt.step, f"step {t}")
        sched.step()
        losses.append(loss.item())


def _fsdp2(cls, rank, side, outdir):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict, set_model_state_dict,
                                                         set_optimizer_state_dict)
    from torch.distributed.device_mesh import init_device_mesh
    mesh = init_device_mesh("cpu", (WORLD,))
    model = _fsdp2_model(mesh)
    opt = _guarded(lambda: cls(model.parameters(), **KW), "construction")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup)
    out = {"losses": [], "local_shapes": [tuple(p.to_local().shape) for p in model.parameters()]}
    _fsdp2_train(model, opt, sched, rank, 0, STEPS, out["losses"])
    out["params"] = [p.full_tensor().detach().clone() for p in model.parameters()]
    out["state"] = [{k: (type(v).__name__, tuple(v.shape), tuple(v.to_local().shape) if hasattr(v, "to_local")
                         else tuple(v.shape)) for k, v in opt.state[p].items()} for p in model.parameters()]
    # From here on each part is recorded on its own, so one failure does not hide the next.
    try:
        osd = _guarded(lambda: get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True)),
                       "get_optimizer_state_dict")
        out["full_osd"] = osd if rank == 0 else None
    except _PhaseFailed as e:
        out["full_osd_error"] = str(e)
    # A sharded checkpoint with torch.distributed.checkpoint, then a resume into fresh objects
    ckpt = Path(outdir) / f"dcp-{side}"
    try:
        _guarded(lambda: dcp.save({"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)},
                                  checkpoint_id=str(ckpt)), "dcp.save")
    except _PhaseFailed as e:
        out["dcp_save_error"] = str(e)
    sched_state = sched.state_dict()
    reference = []
    _fsdp2_train(model, opt, sched, rank, STEPS, STEPS + RESUME_STEPS, reference)
    out["continued_losses"] = reference
    sources = {"ours": ["ours", "torch"], "torch": ["torch"]}[side]  # ours also resumes from torch's checkpoint
    for source in sources:
        key = f"resumed_from_{source}"
        try:
            fresh = _fsdp2_model(mesh)
            fresh_opt = _guarded(lambda: cls(fresh.parameters(), **KW), "construction for resume")
            fresh_sched = torch.optim.lr_scheduler.LambdaLR(fresh_opt, _warmup)
            src = Path(outdir) / f"dcp-{source}"

            def load():
                state = {"model": get_model_state_dict(fresh), "optim": get_optimizer_state_dict(fresh, fresh_opt)}
                dcp.load(state, checkpoint_id=str(src))
                set_model_state_dict(fresh, state["model"])
                set_optimizer_state_dict(fresh, fresh_opt, state["optim"])

            _guarded(load, f"dcp.load of {source}'s checkpoint")
            fresh_sched.load_state_dict(sched_state)
            losses = []
            _fsdp2_train(fresh, fresh_opt, fresh_sched, rank, STEPS, STEPS + RESUME_STEPS, losses)
            out[key] = losses
        except _PhaseFailed as e:
            out[key + "_error"] = str(e)
    return out


def _worker(group, outdir):
    import torch.distributed as dist
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    classes = _classes()
    results = {}
    for scenario in GROUPS[group]:
        results[scenario] = {}
        for side in ("torch", "ours"):  # torch first: its checkpoint is resumed by ours
            try:
                if scenario == "fsdp2":
                    results[scenario][side] = _fsdp2(classes[side], rank, side, outdir)
                else:
                    results[scenario][side] = _zero(classes[side], rank, bucket_view=scenario == "zero_bucket_view")
            except _PhaseFailed as e:
                results[scenario][side] = {"error": str(e)}
            except BaseException as e:  # noqa: BLE001 - a failure outside a guarded phase (symmetric by construction)
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                results[scenario][side] = {"error": traceback.format_exc()}
    torch.save(results, Path(outdir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------------------
# Test side


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The workers of every group, launched together; {scenario: {"ranks": [rank0, rank1] or None, "log": str}}."""
    launched = {}
    for group in GROUPS:
        outdir = tmp_path_factory.mktemp(group)
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
               "WORLD_SIZE": str(WORLD), "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen([sys.executable, __file__, group, str(outdir)], env={**env, "RANK": str(r)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(WORLD)]
        launched[group] = (outdir, procs)
    deadline = time.monotonic() + TIMEOUT
    results = {}
    for group, (outdir, procs) in launched.items():
        log = []
        for r, proc in enumerate(procs):
            try:
                stdout, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, _ = proc.communicate()
                stdout += f"\n[rank {r} killed after {TIMEOUT}s]"
            log.append(f"--- rank {r} (exit {proc.returncode}) ---\n{stdout[-6000:]}")
        files = [outdir / f"rank{r}.pt" for r in range(WORLD)]
        ranks = [torch.load(f, weights_only=False) for f in files] if all(f.exists() for f in files) else None
        for scenario in GROUPS[group]:
            results[scenario] = {"ranks": None if ranks is None else [r[scenario] for r in ranks],
                                 "log": "\n".join(log)}
    return results


def _side(runs, scenario, side, key=None):
    run = runs[scenario]
    assert run["ranks"] is not None, f"the {scenario} workers wrote no results:\n{run['log']}"
    sides = [r[side] for r in run["ranks"]]
    for rank, s in enumerate(sides):
        assert "error" not in s, f"{scenario}, {side} side, rank {rank}:\n{s['error']}"
        if key is not None:
            assert key + "_error" not in s, f"{scenario}, {side} side, rank {rank}:\n{s[key + '_error']}"
            assert key in s, f"{scenario}, {side} side, rank {rank}: no {key!r}"
    return sides


def _assert_close_lists(a, b, what):
    assert len(a) == len(b), what
    for i, (x, y) in enumerate(zip(a, b)):
        torch.testing.assert_close(x, y, **TOL, msg=lambda m, i=i: f"{what} [{i}]: {m}")


def _assert_nested_close(a, b, what):
    if torch.is_tensor(b):
        assert torch.is_tensor(a), f"{what}: {type(a).__name__} where torch has a Tensor"
        assert (a.dtype, tuple(a.shape)) == (b.dtype, tuple(b.shape)), f"{what}: {a.dtype}{tuple(a.shape)} vs " \
                                                                       f"{b.dtype}{tuple(b.shape)}"
        torch.testing.assert_close(a, b, **TOL, msg=lambda m: f"{what}: {m}")
    elif isinstance(b, dict):
        assert isinstance(a, dict) and set(a) == set(b), f"{what}: keys {sorted(map(str, a))} vs torch's " \
                                                         f"{sorted(map(str, b))}"
        for k in b:
            _assert_nested_close(a[k], b[k], f"{what}[{k!r}]")
    elif isinstance(b, (list, tuple)):
        assert isinstance(a, (list, tuple)) and len(a) == len(b), f"{what}: {a!r} vs torch's {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_nested_close(x, y, f"{what}[{i}]")
    else:
        assert a == b, f"{what}: {a!r} vs torch's {b!r}"


@pytest.mark.parametrize("scenario", ["zero", "zero_bucket_view"])
def test_zero_redundancy_optimizer_matches_torch(runs, scenario):
    ours, theirs = _side(runs, scenario, "ours"), _side(runs, scenario, "torch")
    for rank in range(WORLD):
        _assert_close_lists(ours[rank]["losses"], theirs[rank]["losses"], f"rank {rank} losses")
        _assert_close_lists(ours[rank]["params"], theirs[rank]["params"], f"rank {rank} parameters")
    _assert_close_lists(ours[0]["params"], ours[1]["params"], "ours, rank 0 vs rank 1 (ZeRO broadcasts)")
    assert ours[0]["local_state_types"] == theirs[0]["local_state_types"]
    assert theirs[0]["losses"][0] != theirs[0]["losses"][-1]  # it trained


@pytest.mark.parametrize("scenario", ["zero", "zero_bucket_view"])
def test_zero_consolidated_state_dict_matches_torch(runs, scenario):
    ours, theirs = _side(runs, scenario, "ours"), _side(runs, scenario, "torch")
    _assert_nested_close(ours[0]["state_dict"], theirs[0]["state_dict"], "consolidated state_dict")
    assert len(theirs[0]["state_dict"]["state"]) == len(list(_model().parameters()))


def test_fsdp2_training_matches_torch(runs):
    ours, theirs = _side(runs, "fsdp2", "ours"), _side(runs, "fsdp2", "torch")
    assert theirs[1]["local_shapes"][-1] == (0,)  # rank 1 holds an empty shard of the last bias
    for rank in range(WORLD):
        _assert_close_lists(ours[rank]["losses"], theirs[rank]["losses"], f"rank {rank} losses")
        _assert_close_lists(ours[rank]["params"], theirs[rank]["params"], f"rank {rank} full parameters")
        _assert_close_lists(ours[rank]["continued_losses"], theirs[rank]["continued_losses"],
                            f"rank {rank} losses after the checkpoint")


def test_fsdp2_optimizer_state_is_sharded_like_torch(runs):
    """state[p] values of DTensor parameters: the same types (DTensor for the moments), global and local shapes."""
    ours, theirs = _side(runs, "fsdp2", "ours"), _side(runs, "fsdp2", "torch")
    for rank in range(WORLD):
        assert ours[rank]["state"] == theirs[rank]["state"], f"rank {rank}"


def test_fsdp2_full_optimizer_state_dict_matches_torch(runs):
    ours = _side(runs, "fsdp2", "ours", "full_osd")
    theirs = _side(runs, "fsdp2", "torch", "full_osd")
    _assert_nested_close(ours[0]["full_osd"], theirs[0]["full_osd"], "get_optimizer_state_dict(full_state_dict)")


@pytest.mark.parametrize("source", ["ours", "torch"])
def test_fsdp2_dcp_checkpoint_resume_matches_torch(runs, source):
    key = f"resumed_from_{source}"
    for side in ("ours", "torch"):
        for rank, s in enumerate(_side(runs, "fsdp2", side)):
            assert "dcp_save_error" not in s, f"{side} side, rank {rank}:\n{s['dcp_save_error']}"
    ours = _side(runs, "fsdp2", "ours", key)
    theirs = _side(runs, "fsdp2", "torch")
    for rank in range(WORLD):  # resuming gives what continuing without the checkpoint gave torch
        _assert_close_lists(ours[rank][key], theirs[rank]["continued_losses"], f"rank {rank} resumed losses")
    torch_resumed = _side(runs, "fsdp2", "torch", "resumed_from_torch")
    for rank in range(WORLD):
        _assert_close_lists(torch_resumed[rank]["resumed_from_torch"], theirs[rank]["continued_losses"],
                            f"torch's own resume, rank {rank}")


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
