from __future__ import annotations

import torch
from torch import nn

from xtremedistil.training import EvalRecord, StepRecord, drain, fit


def _setup(dev_values):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    data = [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(4)]
    values = iter(dev_values)
    snapshots = []

    def evaluate() -> float:
        snapshots.append(model.weight.detach().clone())
        return next(values)

    def loss_fn(batch):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, data, evaluate, loss_fn, optimizer, snapshots


def test_fit_restores_the_best_dev_weights_and_stops_early():
    model, data, evaluate, loss_fn, optimizer, snapshots = _setup([0.5, 0.9, 0.7, 0.6, 0.95])
    records = []
    result = drain(
        fit(model, lambda epoch: data, loss_fn, optimizer, evaluate, epochs=10, patience=2), records.append
    )
    evals = [r for r in records if isinstance(r, EvalRecord)]
    assert [e.value for e in evals] == [0.5, 0.9, 0.7, 0.6]  # stopped after 2 evaluations without gain
    assert result.best == 0.9 and result.stopped_early and result.epochs == 4
    assert result.best_step == 8
    assert torch.equal(model.weight, snapshots[1])
    assert sum(isinstance(r, StepRecord) for r in records) == 16


def test_fit_minimises_when_asked_and_can_keep_the_start():
    model, data, evaluate, loss_fn, optimizer, snapshots = _setup([1.0, 2.0, 3.0])
    start = model.weight.detach().clone()
    result = drain(
        fit(
            model,
            lambda epoch: data,
            loss_fn,
            optimizer,
            evaluate,
            epochs=5,
            patience=2,
            higher_is_better=False,
            evaluate_start=True,
        ),
        lambda r: None,
    )
    assert result.best == 1.0 and result.best_step == 0
    assert torch.equal(model.weight, start)


def test_frozen_parameters_get_no_updates():
    model, data, evaluate, loss_fn, optimizer, _ = _setup([0.1, 0.2])
    model.bias.requires_grad_(False)
    bias = model.bias.detach().clone()
    weight = model.weight.detach().clone()
    drain(fit(model, lambda epoch: data, loss_fn, optimizer, evaluate, epochs=2, patience=5), lambda r: None)
    assert torch.equal(model.bias, bias)
    assert not torch.equal(model.weight, weight)


def test_eval_every_steps():
    model, data, evaluate, loss_fn, optimizer, _ = _setup([0.1, 0.2, 0.3, 0.4, 0.5])
    records = []
    drain(
        fit(model, lambda epoch: data, loss_fn, optimizer, evaluate, epochs=2, patience=5, eval_every=3),
        records.append,
    )
    assert [r.step for r in records if isinstance(r, EvalRecord)] == [3, 6, 8]
