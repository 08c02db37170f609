"""Smoke test of ``benchmarks/gpu_check.py`` on the CPU (``--quick``).

The script is meant for a machine with a GPU; ``--device cpu`` runs both
sides of the comparison on the CPU so that its code paths are exercised
here. Nothing is asserted about times beyond their being finite and positive.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"

ESTIMATORS = {
    "MatrixFactorization", "CNNRecommender", "LSTMRecommender",
    "AttentionRecommender", "Popularity", "ItemKNN", "EASE",
}


def test_gpu_check_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "### GPU check" in res.stdout

    data = json.loads(out.read_text())
    assert data["benchmark"] == "gpu" and data["passed"] is True
    assert data["failures"] == []
    assert data["settings"]["quick"] is True
    assert data["settings"]["tolerance"]["rel"] > 0
    assert data["environment"]["device"] == "cpu"

    results = data["results"]
    assert {r["class"] for r in results} == ESTIMATORS
    mf = {r["params"].get("loss") for r in results if r["class"] == "MatrixFactorization"}
    assert mf >= {"mse", "bce", "bpr"}
    assert any(r["params"].get("solver") == "adam" and r["params"].get("loss") == "mse"
               for r in results)
    assert any(r["params"].get("architecture") == "neumf" for r in results)
    for r in results:
        assert r["ok"], r["estimator"]
        for side in ("cpu", "device"):
            run = r[side]
            assert "error" not in run, (r["estimator"], side, run.get("error"))
            assert run["device"] == "cpu"
            assert math.isfinite(run["quality"])
            assert run["fit_wall_s"] > 0 and run["recommend_s"] > 0
            assert run["train_samples_per_s"] > 0
        neural = r["class"] not in {"Popularity", "ItemKNN", "EASE"}
        assert (r["device"]["epochs"] is not None) == neural
        # AMP: the neural estimators are fitted once more through a bf16
        # Accelerator on the device under test; the baselines have none
        if not neural:
            assert r["amp"] == "not available in this version", r["estimator"]
            continue
        if r["estimator"] == "MatrixFactorization(loss='mse')":  # the Gibbs sampler
            assert r["amp"] == "not applicable: the Gibbs sampler trains no network"
            continue
        amp = r["amp"]
        assert isinstance(amp, dict), (r["estimator"], amp)
        assert amp["precision"] == "bf16"
        assert "error" not in amp["run"], (r["estimator"], amp["run"].get("error"))
        assert amp["run"]["device"] == "cpu"
        assert amp["run"]["accelerator"]["mixed_precision"] == "bf16"
        assert amp["run"]["accelerator"]["device"] == "cpu"
        assert amp["run"]["epochs"] == r["device"]["epochs"]
        speedup = amp.get("epoch_speedup", amp.get("fit_speedup"))
        assert speedup is not None and math.isfinite(speedup) and speedup > 0
        assert math.isfinite(amp["fit_speedup"]) and amp["fit_speedup"] > 0
        assert isinstance(amp["quality"], dict) and amp["quality"]["ok"] is True
        assert math.isfinite(amp["quality"]["bf16"])
    assert data["settings"]["amp"]["precision"] == "bf16"


def test_gpu_check_amp_without_accelerate(monkeypatch):
    """Without ``accelerate``, the AMP check says so instead of failing."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    monkeypatch.setitem(sys.modules, "accelerate", None)  # import fails
    import gpu_check

    assert gpu_check.AmpAccelerator().get("cpu") == (None, "accelerate not installed")
