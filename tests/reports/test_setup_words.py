"""The report's set-up sentence says how the models were trained, from config.json alone."""

from pathlib import Path

from reports.load import RunData
from reports.setup_words import training_phrase


def _run(**config):
    base = {"algorithm": "fedavg", "rounds": 3, "local_epochs": [1, 1], "optimizer": "adam", "lr": 0.001,
            "lr_schedule": "cosine", "batch_size": 32, "class_weighting": "balanced", "archs": ["simple", "simple"]}
    return RunData(Path("."), {**base, **config}, None, [], None)


def test_training_phrase_names_the_schedule_and_bf16_only_when_used():
    phrase = training_phrase(_run())
    assert "3 rounds of 1 local epoch" in phrase and "Adam (learning rate 0.001, cosine schedule)" in phrase
    assert "batch 32" in phrase and "balanced class weights" in phrase and "bf16" not in phrase
    assert "bf16 autocast" in training_phrase(_run(precision="bf16"))


def test_training_phrase_says_when_the_test_set_was_measured_less_often():
    assert "tested every" not in training_phrase(_run(eval_every=1))
    assert "tested every 3 rounds and in the last" in training_phrase(_run(eval_every=3))
