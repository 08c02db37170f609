"""The main job: ``python -m sklearn_recsys demo``."""

import json
import subprocess
import sys

import pytest

from sklearn_recsys.__main__ import main


def test_demo_quick_writes_table_figure_and_json(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo"
    assert main(
        ["demo", "--quick", "--models", "popularity", "ease", "mf",
         "--output-dir", str(out), "--no-progress"]
    ) == 0
    printed = capsys.readouterr().out
    assert "ndcg@10" in printed and "EASE" in printed and "MF (BPR)" in printed
    results = json.loads((out / "results.json").read_text())
    names = [r["model"] for r in results["results"]]
    assert names == ["Popularity", "EASE", "MF (BPR)"]
    for row in results["results"]:
        assert 0 <= row["ndcg@10"] <= row["hit_rate@10"] <= 1
    # personalised models beat popularity on the planted data
    by_name = {r["model"]: r for r in results["results"]}
    assert by_name["EASE"]["ndcg@10"] > by_name["Popularity"]["ndcg@10"]
    assert (out / "results.png").stat().st_size > 10_000
    assert (out / "results.csv").exists()
    assert list(results["loss_curves"]) == ["MF (BPR)"]


def test_cli_help_and_bad_arguments():
    res = subprocess.run(
        [sys.executable, "-m", "sklearn_recsys", "demo", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "--dataset" in res.stdout and "--device" in res.stdout
    with pytest.raises(SystemExit):
        main(["demo", "--dataset", "nope"])
    with pytest.raises(SystemExit):
        main([])
