"""The SDK reads a finding's ``caused_by`` and each suggestion's ``expect``, and the CLI prints them
(issue 11). Pure client code on an API document: no server needed."""

from __future__ import annotations

from trainrx.cli.render import diagnosis_text
from trainrx.types import Diagnosis, Expectation, build

DOCUMENT = {
    "job_id": "j1", "status": "succeeded", "final": True, "verdict": "training_problem",
    "findings": [
        {"code": "learning_rate_too_high", "severity": "error", "epoch": 1, "evidence": {"threshold": 0.9},
         "explanation": "The steps are too large.",
         "suggestions": [{"patch": {"optimizer": {"learning_rate": 0.05}}, "why": "Smaller steps.",
                          "expect": {"metric": "train_accuracy", "op": ">=", "value": 0.55, "within_epochs": 20}}]},
        {"code": "dead_relu", "severity": "error", "epoch": 1, "evidence": {}, "explanation": "Dead units.",
         "caused_by": "learning_rate_too_high", "suggestions": [{"patch": {"activation": {"name": "prelu"}}}]},
    ],
}


def test_caused_by_and_the_expectation_are_typed_and_printed():
    diagnosis = build(Diagnosis, DOCUMENT)
    cause, symptom = diagnosis.findings
    assert cause.caused_by is None and symptom.caused_by == "learning_rate_too_high"
    expect = cause.suggestions[0].expect
    assert isinstance(expect, Expectation) and expect.value == 0.55 and expect.within_epochs == 20
    assert symptom.suggestions[0].expect is None
    text = diagnosis_text(diagnosis)
    assert "dead_relu (epoch 1), caused by learning_rate_too_high" in text
    assert "expect: train_accuracy >= 0.55 within 20 epochs" in text
