"""Smoke test of examples/python (a short run per optimizer; the full run is the example's own)."""
import importlib.util
from pathlib import Path

import numpy as np

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
EXAMPLE = EXAMPLES / "train_mlp.py"


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("optimizer", ["adam", "amsgrad", "adafix", "sgd"])
def test_train_mlp_learns(optimizer, capsys):
    accuracy = _load(EXAMPLE).main(["--optimizer", optimizer, "--epochs", "8"])
    assert accuracy > 0.6, f"{optimizer}: accuracy {accuracy} (chance is 1/3)"
    assert "steps in" in capsys.readouterr().out


def test_digits_demo_smoke(tmp_path, capsys):
    """make demo's script at tiny settings: every optimizer trains, the table is printed, the PNG is written."""
    results = _load(EXAMPLES / "digits_demo.py").main(
        ["--epochs", "3", "--seeds", "2", "--hidden", "32", "--lr", "1e-2", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    for label in ("SGD+momentum", "Adam", "AMSGrad", "AdaFix", "test accuracy"):
        assert label in out
    assert (tmp_path / "digits_curves.png").stat().st_size > 10_000
    for name, runs in results.items():
        assert len(runs) == 2 and all(np.isfinite(r["train_loss"]).all() for r in runs)
        assert np.mean([r["test_accuracy"][-1] for r in runs]) > 0.5, name  # chance is 0.1


def test_torch_drop_in_example_trains_like_torch(capsys):
    """The torch drop-in example: both optimizers reach the same loss (same seed, same data, same schedule)."""
    example = _load(EXAMPLES / "torch_drop_in.py")
    ours = example.main(["--optimizer", "adamcore", "--epochs", "4", "--hidden", "32"])
    theirs = example.main(["--optimizer", "torch", "--epochs", "4", "--hidden", "32"])
    out = capsys.readouterr().out
    assert "adamcore: final loss" in out and "torch: final loss" in out and "us per step" in out
    assert ours == pytest.approx(theirs, rel=1e-3), (ours, theirs)
    assert ours < 0.2  # it learned (the target's variance is about 0.25)


def test_transformer_demo_trains_like_torch(tmp_path, capsys):
    """make demo-torch's script at small settings: adamcore.torch.AdamW and torch's fused AdamW train the same
    transformer from the same weights on the same batches to the same losses (the first steps agree to float32
    rounding; the run stays close), the loss falls well below its start, and the plot is written."""
    runs, entropy = _load(EXAMPLES / "transformer_demo.py").main(
        ["--steps", "60", "--width", "32", "--layers", "1", "--out", str(tmp_path)])
    (torch_loss, _), (ours_loss, _) = runs.values()
    assert np.abs(torch_loss[:5] - ours_loss[:5]).max() < 1e-4
    assert np.abs(torch_loss - ours_loss).max() < 2e-2
    assert ours_loss[-10:].mean() < 0.8 * ours_loss[0]
    assert entropy < ours_loss[0]
    out = capsys.readouterr().out
    assert "largest |loss difference|" in out and "optimizer.step()" in out
    assert (tmp_path / "transformer_adamw.png").stat().st_size > 10_000
