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


# --------------------------------------------------------------------------------------- checkpoint resume


def _resumable_run(checkpoint, stop_after: int | None = None, eval_every: int = 0):
    """A small dropout model trained 3 epochs with a warm-up schedule; ``stop_after`` steps, the generator
    is dropped (a kill: nothing in memory survives). Returns (state, result or None, records)."""
    from xtremedistil.training import fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1))
    data = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
    target = data.sum(1, keepdim=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 5))

    def batches(epoch):
        order = torch.randperm(40, generator=torch.Generator().manual_seed(epoch))
        return [order[i : i + 8] for i in range(0, 40, 8)]

    def loss(idx):
        return ((model(data[idx]) - target[idx]) ** 2).mean()

    def dev():
        return -float(((model(data) - target) ** 2).mean())

    run = fit(
        model,
        batches,
        loss,
        optimizer,
        dev,
        epochs=3,
        patience=5,
        scheduler=scheduler,
        eval_every=eval_every,
        checkpoint=checkpoint,
    )
    records = []
    while True:
        try:
            record = next(run)
        except StopIteration as stop:
            return {k: v.clone() for k, v in model.state_dict().items()}, stop.value, records
        records.append(record)
        if stop_after is not None and isinstance(record, StepRecord) and record.step == stop_after:
            run.close()
            return None, None, records


def test_a_killed_fit_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    from xtremedistil.training import Checkpoint

    reference, expected, _ = _resumable_run(None, eval_every=4)
    for every, kills in ((3, [4, 8, 13]), (0, [6, 14])):  # every 3 steps; only at epoch ends (5 steps each)
        path = tmp_path / f"every{every}.pt"
        steps_seen = []
        for kill in kills:
            _, _, records = _resumable_run(Checkpoint(path, every), stop_after=kill, eval_every=4)
            steps_seen.append([r.step for r in records if isinstance(r, StepRecord)][0])
        state, result, records = _resumable_run(Checkpoint(path, every), eval_every=4)
        assert result == expected
        assert all(torch.equal(state[k], reference[k]) for k in reference)
        assert steps_seen[0] == 1 and all(s > 1 for s in steps_seen[1:])  # later runs did not start over


def test_a_checkpoint_written_after_the_last_epoch_resumes_to_the_result(tmp_path):
    from xtremedistil.training import Checkpoint

    path = tmp_path / "done.pt"
    state, result, _ = _resumable_run(Checkpoint(path, 0, extra=lambda: {"history": [1, 2]}))
    seen = []
    resumed = Checkpoint(path, 0, on_resume=lambda extra, step: seen.append((extra, step)))
    again, result_again, records = _resumable_run(resumed)
    assert records == [] and result_again == result
    assert seen == [
        ({"history": [1, 2]}, result.steps)
    ]  # the caller's state comes back with nothing left to do
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_split_batches_give_the_whole_batch_update():
    """Gradients accumulated over row slices (weighted by their rows) make the same step as the whole batch."""

    class Rows(tuple):  # (x, y) whose len() is its number of rows, as a Batch's is
        def __len__(self) -> int:
            return self[0].shape[0]

    weights = []
    for split in (
        None,
        lambda batch: [Rows((batch[0][:3], batch[1][:3])), Rows((batch[0][3:], batch[1][3:]))],
    ):
        model, data, evaluate, loss_fn, optimizer, _ = _setup([0.5])
        records = []
        drain(
            fit(
                model,
                lambda epoch, data=data: data[:1],
                loss_fn,
                optimizer,
                evaluate,
                epochs=1,
                patience=1,
                split=split,
            ),
            records.append,
        )
        weights.append(model.weight.detach().clone())
        steps = [r for r in records if isinstance(r, StepRecord)]
        assert len(steps) == 1
        weights.append(torch.tensor(steps[0].loss))
    assert torch.allclose(weights[0], weights[2], atol=1e-6)  # the weights after the step
    assert torch.allclose(weights[1], weights[3], atol=1e-6)  # the batch's loss as reported
    assert not torch.equal(weights[0], _setup([0.5])[0].weight)  # the step did move them
