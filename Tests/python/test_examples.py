"""Smoke test of examples/python (a short run per optimizer; the full run is the example's own)."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "train_mlp.py"


@pytest.mark.parametrize("optimizer", ["adam", "amsgrad", "adafix", "sgd"])
def test_train_mlp_learns(optimizer, capsys):
    spec = importlib.util.spec_from_file_location("train_mlp", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    accuracy = module.main(["--optimizer", optimizer, "--epochs", "8"])
    assert accuracy > 0.6, f"{optimizer}: accuracy {accuracy} (chance is 1/3)"
    assert "steps in" in capsys.readouterr().out
