"""The overfitting guard's rule, on scripted losses."""

from __future__ import annotations

from types import SimpleNamespace

from trainer.callbacks import OverfittingGuard, TimeBudget


def _run(guard: OverfittingGuard, points: list[tuple[float, float]]) -> list[int]:
    """Feed (train loss, eval loss) per evaluation at steps 10, 20...; return the steps where it stopped."""
    stops = []
    for i, (tr, ev) in enumerate(points, start=1):
        state = SimpleNamespace(global_step=10 * i)
        control = SimpleNamespace(should_training_stop=False)
        guard.on_log(None, state, control, logs={"loss": tr})
        guard.on_evaluate(None, state, control, metrics={"eval_loss": ev})
        if control.should_training_stop:
            stops.append(state.global_step)
    return stops


def test_stops_when_eval_rises_while_train_falls() -> None:
    guard = OverfittingGuard(patience=2)
    stops = _run(guard, [(2.0, 1.9), (1.5, 1.6), (1.0, 1.7), (0.6, 1.8), (0.3, 2.0)])
    assert stops == [40] and guard.detected_at_step == 40
    assert (guard.best_step, guard.best_eval) == (20, 1.6)


def test_no_stop_when_both_rise_or_eval_recovers() -> None:
    assert _run(OverfittingGuard(patience=2), [(2.0, 1.9), (2.1, 2.0), (2.2, 2.1), (2.3, 2.2)]) == []
    guard = OverfittingGuard(patience=3)
    assert _run(guard, [(2.0, 1.9), (1.5, 2.0), (1.2, 2.1), (1.0, 1.5), (0.9, 1.6), (0.8, 1.7)]) == []
    assert guard.best_step == 40 and guard.detected_at_step is None


def test_min_delta_ignores_noise() -> None:
    assert _run(OverfittingGuard(patience=2, min_delta=0.05), [(2.0, 1.5), (1.5, 1.52), (1.0, 1.53)]) == []


def test_replay_restores_state_from_a_checkpoint_history() -> None:
    guard = OverfittingGuard(patience=2)
    guard.replay([{"step": 10, "loss": 2.0}, {"step": 10, "eval_loss": 1.0},
                  {"step": 20, "loss": 1.5}, {"step": 20, "eval_loss": 1.2}])
    assert (guard.best_step, guard.bad_evals) == (10, 1)
    assert _run(guard, [(1.0, 1.3)]) == [10]


def test_time_budget_stops_and_forces_a_last_eval_and_checkpoint() -> None:
    now = [100.0]
    budget = TimeBudget(60, clock=lambda: now[0])
    args = SimpleNamespace(eval_strategy="steps", save_strategy="steps")
    budget.on_train_begin(args, None, None)
    for step, t in ((1, 120.0), (2, 150.0), (3, 161.0)):
        now[0] = t
        control = SimpleNamespace(should_training_stop=False, should_evaluate=False, should_save=False)
        budget.on_step_end(args, SimpleNamespace(global_step=step, max_steps=10), control)
    assert budget.stopped_at_step == 3
    assert control.should_training_stop and control.should_evaluate and control.should_save
    off = TimeBudget(0, clock=lambda: 1e9)
    off.on_train_begin(args, None, None)
    control = SimpleNamespace(should_training_stop=False)
    off.on_step_end(args, SimpleNamespace(global_step=1, max_steps=10), control)
    assert not control.should_training_stop and off.stopped_at_step is None
