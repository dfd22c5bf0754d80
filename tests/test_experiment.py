from __future__ import annotations

import json

import pytest

from tests.test_distil_e2e import toy_config  # noqa: F401  (fixture)
from xtremedistil.cli import main
from xtremedistil.config import load_config
from xtremedistil.errors import ConfigError
from xtremedistil.experiment import Cell, Experiment, cell_config, grid, select
from xtremedistil.student.families import family_fields

TABLE = [
    {
        "key": "xs",
        "dev_mean_f1": 80.0,
        "teacher_dev_mean_f1": 90.0,
        "params": 2_000_000,
        "latency_ms": 1.5,
        "throughput": 2000,
    },
    {
        "key": "s",
        "dev_mean_f1": 84.0,
        "teacher_dev_mean_f1": 90.0,
        "params": 6_000_000,
        "latency_ms": 3.0,
        "throughput": 900,
    },
    {
        "key": "base",
        "dev_mean_f1": 87.0,
        "teacher_dev_mean_f1": 90.0,
        "params": 30_000_000,
        "latency_ms": 9.0,
        "throughput": 200,
    },
]


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({}, "base"),
        ({"max_params": 10_000_000}, "s"),
        ({"max_latency_ms": 2.0}, "xs"),
        ({"min_retention": 0.95}, "base"),  # only base reaches 85.5 on dev
        ({"max_params": 10_000_000, "min_retention": 0.92}, "s"),  # 84 >= 82.8 within the size budget
    ],
)
def test_budget_selection_picks_the_best_row_within_the_budget(budget, expected):
    best, why = select(TABLE, **budget)
    assert best["key"] == expected and expected in why


def test_budget_that_nothing_meets():
    best, why = select(TABLE, max_params=1000)
    assert best is None and "no cell meets the budget" in why


def test_grid_is_the_product_plus_extra_cells_without_duplicates():
    config = load_config(
        None,
        [
            'experiment.strategies=["D1", "D4.2"]',
            "experiment.transfer_sizes=[100, 0]",
            "experiment.seeds=[1]",
            'experiment.extra=[{strategy="D4.2", seed=2}, {strategy="D1", seed=1, transfer_size=100}]',
        ],
    )
    cells = grid(config)
    assert len(cells) == 5
    assert Cell("D4.2", 100, 0, None, "xs", 2) in cells  # no layers given: distil.layer (the middle one)
    assert len({c.key for c in cells}) == 5
    assert {c.layer for c in grid(load_config(None, ["distil.layer=4"]))} == {4}
    assert {c.layer for c in grid(load_config(None, ["experiment.layers=[3, 6]"]))} == {3, 6}


def test_student_names_choose_the_family_and_sizes(tmp_path):
    from xtremedistil.experiment import cell_config
    from xtremedistil.student.families import student_sizes

    config = load_config(None, ['experiment.students=["xs", "100,300", "t2-64", "t4-384-e96"]'])
    students = {c.student: cell_config(config, c, tmp_path).student for c in grid(config)}
    assert [s.kind for s in students.values()] == ["bilstm", "bilstm", "transformer", "transformer"]
    assert (students["100,300"].embedding_dim, students["100,300"].hidden_size) == (100, 300)
    assert student_sizes(students["t2-64"]) == {
        "layers": 2, "hidden_size": 64, "heads": 2, "intermediate_size": 256, "embedding_dim": 50,
    }  # fmt: skip
    assert student_sizes(students["t4-384-e96"])["embedding_dim"] == 96


def test_transformer_only_keys_pass_when_the_grid_names_transformers_and_are_checked_per_cell(tmp_path):
    """distil.attention_layer / layer_map on an experiment whose cells name transformer students: the
    top-level config (student.kind is the BiLSTM default) loads; a BiLSTM cell of such a grid is refused."""
    for key in ("distil.attention_layer=2", "distil.layer_map=[[1, 2]]"):
        with pytest.raises(ConfigError, match="transformer"):
            load_config(None, [key])  # a plain BiLSTM run
        config = load_config(None, [key, 'experiment.students=["t2-16", "xs"]'])
        transformer, bilstm = grid(config)
        assert cell_config(config, transformer, tmp_path).student.kind == "transformer"
        with pytest.raises(ConfigError, match="transformer"):
            cell_config(config, bilstm, tmp_path)
        with pytest.raises(ConfigError, match="for transformer students"):  # `distil` of that config
            family_fields(config, None, {})


def test_a_ready_teacher_cannot_be_fine_tuned_on_fewer_labels(tmp_path):
    from xtremedistil.errors import ConfigError
    from xtremedistil.experiment import cell_config

    config = load_config(None, ["teacher.fine_tune=false", "experiment.labeled_sizes=[100]"])
    with pytest.raises(ConfigError, match="ready teacher"):
        cell_config(config, grid(config)[0], tmp_path)


def test_tiny_grid_runs_resumes_and_adds_only_new_cells(toy_config, tmp_path, monkeypatch, capsys):  # noqa: F811
    text = (
        toy_config.read_text() + '\n[experiment]\nstrategies = ["D0-S", "D4.1"]\nseeds = [13]\nlayers = [1]\n'
    )
    toy_config.write_text(text)
    assert main(["experiment", str(toy_config), "--max-params", "100000000"]) == 0
    run = tmp_path / "run"
    rows = json.loads((run / "results.json").read_text())
    assert [r["cell"]["strategy"] for r in rows] == ["D0-S", "D4.1"]
    assert [len(r["stages"]) for r in rows] == [1, 3]  # each cell ran its own strategy's schedule
    assert (run / "results.csv").read_text().count("\n") == 3 and (run / "results.png").is_file()
    assert (run / "selected-student" / "selection.json").is_file()
    capsys.readouterr()

    calls = []
    original = Experiment.run_cell
    monkeypatch.setattr(
        Experiment, "run_cell", lambda self, cell: calls.append(cell.key) or original(self, cell)
    )
    assert main(["experiment", str(toy_config)]) == 0
    assert calls == []  # both cells finished earlier: nothing recomputed
    assert main(["experiment", str(toy_config), "--set", 'experiment.strategies=["D0-S", "D4.1", "D1"]']) == 0
    assert calls == ["D1_t0_l0_layer1_xs_s13"]  # only the added cell ran
    assert len(json.loads((run / "results.json").read_text())) == 3

    # --refresh: a row without the raw-text score (an older cell) gets it from the saved student, and the
    # speed is measured again; nothing trains
    path = run / "cells" / "D4.1_t0_l0_layer1_xs_s13" / "result.json"
    row = json.loads(path.read_text())
    assert row["test_raw_mean"] is not None
    path.write_text(json.dumps({**row, "test_raw_mean": None, "throughput": -1.0}))
    assert main(["experiment", str(toy_config), "--refresh"]) == 0
    assert calls == ["D1_t0_l0_layer1_xs_s13"]
    again = json.loads(path.read_text())
    assert again["test_raw_mean"] == pytest.approx(row["test_raw_mean"])
    assert again["throughput"] > 0 and "speed_refreshed" in again
    assert again["throughput_speedup"] == pytest.approx(again["throughput"] / again["teacher_throughput"])
    rounds = again["throughput_speedup_rounds"]  # paired rounds (speed.rounds = 3): the row is the median's
    assert len(rounds) == 3 and again["throughput_speedup"] == sorted(rounds)[1]
    # a saved student that does not score what its row says is not refreshed into it
    path.write_text(json.dumps({**again, "test_raw_mean": None, "test_mean": again["test_mean"] + 5}))
    capsys.readouterr()
    assert main(["experiment", str(toy_config), "--refresh"]) == 2
    assert "not the cell's student" in capsys.readouterr().err


def _row(strategy, f1, *, transfer=20000, labeled=0, student="xs", seed=13):
    cell = {
        "strategy": strategy,
        "transfer_size": transfer,
        "labeled_size": labeled,
        "layer": 6,
        "student": student,
        "seed": seed,
    }
    return {
        "cell": cell,
        "key": f"{strategy}-{transfer}-{labeled}-{student}-{seed}",
        "metric": "f1",
        "test_mean": f1,
        "test_by_language": {"de": f1 - 1, "en": f1 + 1},
        "teacher_test_by_language": {"de": 90.0, "en": 92.0},
        "transfer_windows": transfer,
        "labeled_windows": 4000,
        "params": {"xs": 3_000_000, "s": 6_000_000}[student],
        "throughput": {"xs": 6000.0, "s": 3000.0}[student],
        "latency_ms": {"xs": 0.8, "s": 1.5}[student],
    }


def test_strategy_tables_compare_like_with_like():
    from xtremedistil.experiment_report import _curve, frontier, language_table, strategy_table

    results = [
        _row("D1", 70.0),
        _row("D1", 72.0, seed=14),
        _row("D4.2", 80.0),
        _row("D4.2", 60.0, transfer=5000),
        _row("D4.2", 40.0, labeled=100),  # another setting: not in Table 3
        _row("D4.2", 85.0, student="s"),  # another student: not in Table 3
    ]
    table = strategy_table(results)
    d42 = next(line for line in table.splitlines() if line.startswith("| D4.2 "))
    assert d42 == "| D4.2 | 60.00 | 80.00 |"  # columns: transfer 5000, 20000
    d1 = next(line for line in table.splitlines() if line.startswith("| D1 "))
    assert "71.00 ± 1.00 (n=2)" in d1
    languages = language_table(results)
    assert "| teacher | 90.00 | 92.00 | 91.00 ± 1.00 |" in languages
    assert "| D1 (mean of 2 seeds) | 70.00 | 72.00 | 71.00 ± 1.00 |" in languages
    assert "| D4.2 | 79.00 | 81.00 |" in languages  # the 20000-window cell only
    assert _curve(results, "D4.2", "transfer_size") == [(5000, 60.0), (20000, 80.0)]
    assert _curve(results, "D4.2", "labeled_size") == [(100, 40.0), (2000.0, 80.0)]
    strategy, sizes = frontier(results)
    assert strategy == "D4.2" and [(p["student"], p["f1"]) for p in sizes] == [("xs", 80.0), ("s", 85.0)]


def test_d0_trains_saves_counts_and_selects_every_language_student(toy_config, tmp_path, capsys):  # noqa: F811
    from xtremedistil.speed import parameter_counts
    from xtremedistil.student.saved import load_student

    toy_config.write_text(toy_config.read_text() + '\n[experiment]\nstrategies = ["D0"]\nlayers = [1]\n')
    assert main(["experiment", str(toy_config), "--max-params", "100000000"]) == 0
    run = tmp_path / "run"
    (row,) = json.loads((run / "results.json").read_text())
    assert row["students"] == 2
    students = [load_student(run / "selected-student" / lang) for lang in ("en", "xx")]
    assert row["params"] == sum(parameter_counts(p.student, p.student.embedding)["total"] for p in students)
    assert (run / "selected-student" / "selection.json").is_file()
    # `distil` makes one student, so it refuses the per-language strategy instead of silently training D0-S
    capsys.readouterr()
    assert main(["distil", str(toy_config), "--set", 'distil.strategy="D0"']) == 2
    assert "one student per language" in capsys.readouterr().err
