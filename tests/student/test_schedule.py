from __future__ import annotations

from pathlib import Path

import pytest

from xtremedistil.cli import main
from xtremedistil.student.schedule import STRATEGIES, ScheduleSettings, plan

SNAPSHOTS = Path(__file__).parent / "fixtures"


def test_plan_command_matches_the_snapshot(capsys):
    """`xtremedistil plan` on the default config prints the XtremeDistil schedule (D4.2)."""
    assert main(["plan"]) == 0
    printed = capsys.readouterr().out
    assert printed == (SNAPSHOTS / "plan-D4.2.txt").read_text()


def test_d42_is_representation_then_logits_then_labels_with_gradual_unfreezing():
    stages = plan(ScheduleSettings(strategy="D4.2"))
    assert [s.weights for s in stages] == [{"representation": 1.0}] + [{"logits": 1.0}] * 4 + [
        {"labels": 1.0}
    ] * 4
    assert stages[0].trainable == ("projection", "bilstm", "embedding")  # everything below the head
    cumulative = [
        ("head",),
        ("head", "projection"),
        ("head", "projection", "bilstm"),
        ("head", "projection", "bilstm", "embedding"),
    ]
    assert [s.trainable for s in stages[1:5]] == cumulative
    assert [s.trainable for s in stages[5:]] == cumulative  # re-frozen, then the same order
    assert [s.data for s in stages] == ["transfer"] * 5 + ["labeled"] * 4


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("D0-S", [({"labels"}, "labeled", 4)]),
        ("D1", [({"labels", "logits"}, "labeled+transfer", 4)]),
        ("kd", [({"labels", "soft"}, "labeled+transfer", 4)]),
        ("D2", [({"labels", "logits", "representation"}, "labeled+transfer", 4)]),
        ("D3.1", [({"representation"}, "transfer", 3), ({"labels", "logits"}, "labeled+transfer", 4)]),
        (
            "D4.1",
            [({"representation"}, "transfer", 3), ({"logits"}, "transfer", 4), ({"labels"}, "labeled", 4)],
        ),
    ],
)
def test_each_strategy_builds_its_stages(strategy, expected):
    stages = plan(ScheduleSettings(strategy=strategy))
    assert [(set(s.weights), s.data, len(s.trainable)) for s in stages] == expected


def test_d32_unfreezes_the_joint_stage():
    stages = plan(ScheduleSettings(strategy="D3.2"))
    assert len(stages) == 5 and all(set(s.weights) == {"labels", "logits"} for s in stages[1:])
    assert [len(s.trainable) for s in stages[1:]] == [1, 2, 3, 4]


def test_every_strategy_plans_and_unknown_is_rejected():
    assert all(plan(ScheduleSettings(strategy=s)) for s in STRATEGIES)
    with pytest.raises(ValueError, match="unknown strategy"):
        plan(ScheduleSettings(strategy="D9"))
