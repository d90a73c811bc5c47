"""The three outcomes of a training run (backends/training.py), from the thresholds the task declares,
checked as a pure function and on real runs of the numpy oracle."""

import json
import math

import numpy as np
import pytest

import backends
from backends.task import SIN_TO_COS, TaskConfig, Thresholds
from backends.training import OUTCOMES, diverged_step, outcome_of, run_training

BOUNDS = SIN_TO_COS.thresholds


@pytest.mark.parametrize(
    "losses,metric,outcome,step",
    [
        ([0.5, 0.1, 0.01], 0.02, "learned", None),
        ([0.5, 3.2, 0.01], 0.02, "learned", None),  # the seed task's chaotic start is not divergence
        ([0.5, 0.4], BOUNDS.trivial, "did-not-learn", None),  # no better than predicting 0
        ([0.5, 0.4], 0.573, "did-not-learn", None),
        ([0.5, 0.4], BOUNDS.metric_bound, "did-not-learn", None),  # at the bound: not beyond it
        ([0.57], 2.5e7, "diverged", 0),  # one step that throws the weights off: only the metric shows it
        ([0.57, 510.0, 18.7], 46.0, "diverged", 2),  # the metric's divergence is at the last step
        ([0.5, 0.3], math.inf, "diverged", 1),
        ([0.5, 0.3], math.nan, "diverged", 1),
        ([0.5, 0.3], None, "diverged", 1),  # records write a non-finite metric as None
        ([0.5, BOUNDS.loss_bound * 1.01, 0.1], 0.02, "diverged", 1),  # a loss beyond the bound, even if it recovers
        ([0.5, math.nan], math.nan, "diverged", 1),
        ([0.5, None, 0.2], 0.02, "diverged", 1),
        ([], 0.02, "learned", None),
        ([], math.nan, "diverged", 0),
    ],
)
def test_outcome_of(losses, metric, outcome, step):
    assert outcome_of(losses, metric, SIN_TO_COS) == outcome
    assert outcome_of(losses, metric, BOUNDS) == outcome  # the thresholds alone decide
    assert diverged_step(losses, metric, SIN_TO_COS) == step
    assert outcome in OUTCOMES


def _train(**config):
    return run_training(backends.load("numpy", TaskConfig(**config)))


def test_one_step_that_explodes_is_diverged():
    result = _train(lr=1e3, train_steps=1)
    assert result.losses[0] < 1 and result.metric > 1e6  # the loss never showed it; the held-out MSE did
    assert (result.outcome, result.diverged_step, result.diverged) == ("diverged", 0, True)


def test_a_run_still_blown_up_at_the_end_is_diverged():
    """lr 1 over 20 steps: the loss went 0.57 -> 510 (under the old 1000x-first-loss rule), predictions ±10."""
    result = _train(lr=1.0, train_steps=20)
    assert 500 * result.losses[0] < max(result.losses) < BOUNDS.loss_bound  # exploded, but no loss beyond the bound
    assert result.metric > BOUNDS.metric_bound and np.abs(result.predictions).max() > 5
    assert (result.outcome, result.diverged_step) == ("diverged", 19)


def test_a_loss_beyond_the_bound_stops_training_there():
    result = _train(lr=10.0, train_steps=50)
    step = result.diverged_step
    assert result.losses[step] > BOUNDS.loss_bound and len(result.losses) == step + 1 < 50
    assert result.outcome == "diverged" and math.isnan(result.metric) and result.predictions.size == 0


def test_a_run_that_changes_nothing_did_not_learn():
    result = _train(lr=1e-12)
    assert result.diverged_step is None and result.outcome == "did-not-learn"
    assert BOUNDS.trivial <= result.metric < 0.6


def test_the_defaults_learn():
    result = _train()
    assert (result.outcome, result.diverged_step) == ("learned", None) and result.metric < BOUNDS.trivial / 10


@pytest.mark.slow
def test_normal_training_never_diverges_over_ten_seeds():
    """The seed task's settings (300 steps, lr 0.02; chaotic early on) stay far from both bounds."""
    results = [_train(seed=seed) for seed in range(10)]
    assert [r.outcome for r in results] == ["learned"] * 10
    assert max(max(r.losses) for r in results) < BOUNDS.loss_bound / 100
    assert max(r.metric for r in results) < BOUNDS.metric_bound / 10


def test_describe_carries_the_thresholds_as_plain_json():
    described = json.loads(json.dumps(SIN_TO_COS.describe()))
    assert Thresholds(**described["thresholds"]) == BOUNDS
    assert "predicting 0" in described["thresholds"]["trivial_about"]


@pytest.mark.parametrize(
    "values,message",
    [
        ((0.5, "x", 0.4, 10.0), "Thresholds need 0 < trivial < metric_bound"),
        ((0.0, "x", 4.0, 10.0), "Thresholds need 0 < trivial < metric_bound"),
        ((0.5, "x", 4.0, -1.0), "loss_bound > 0"),
        ((0.5, "x", math.inf, 10.0), "Thresholds must be finite numbers"),
        (("0.5", "x", 4.0, 10.0), "Thresholds must be finite numbers"),
    ],
)
def test_thresholds_that_cannot_hold_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        Thresholds(*values)
