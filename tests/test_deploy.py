"""`xtremedistil benchmark`: teacher and student exported and measured side by side on a tiny run."""

from __future__ import annotations

import json

from tests.test_distil_e2e import toy_config  # noqa: F401  (fixture)
from xtremedistil.cli import main


def test_benchmark_exports_and_measures_five_variants(toy_config, tmp_path, capsys):  # noqa: F811
    # the toy dev split has 6 windows: measure batches of 2
    toy_config.write_text(toy_config.read_text().replace("batch_size = 4", "batch_size = 2"))
    assert main(["distil", str(toy_config)]) == 0
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["benchmark", str(run)]) == 0
    assert "student ONNX Runtime int8" in capsys.readouterr().out
    result = json.loads((run / "benchmark.json").read_text())
    rows = result["rows"]
    assert len(rows) == 5 and (run / "benchmark.png").is_file()
    assert "Deployment benchmark" in (run / "report.md").read_text()
    assert (run / "teacher" / "model.int8.onnx").is_file() and (run / "student" / "model.int8.onnx").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    # fp32 exports tag as their PyTorch models do: the same dev F1 as the run measured
    assert rows["student PyTorch fp32"]["dev_mean_f1"] == metrics["student"]["dev"]["mean_f1"]
    assert rows["student ONNX Runtime fp32"]["dev_mean_f1"] == metrics["student"]["dev"]["mean_f1"]
    assert rows["teacher PyTorch fp32"]["dev_mean_f1"] == metrics["teacher"]["dev"]["mean_f1"]
    assert all(r["throughput"] > 0 and r["latency_ms_median"] > 0 for r in rows.values())
    assert rows["student ONNX Runtime fp32"]["same_tags_as_pytorch"] == 1.0
    assert 0 <= rows["student ONNX Runtime int8"]["same_tags_as_pytorch"] <= 1
