"""``trainrx check``: the expectations a job must meet, their evaluation, and the
reports CI systems read (JUnit XML, GitHub Actions annotations)."""

from __future__ import annotations

import operator
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from trainrx.types import Diagnosis, Job

# Exit codes of `trainrx check` (and of the other commands where they apply).
OK, EXPECTATION_FAILED, INVALID, SERVICE_ERROR, JOB_FAILED = 0, 1, 2, 3, 4

# Summary keys: classification jobs have the accuracies, regression jobs R² and MAE instead.
METRICS = ("train_accuracy", "val_accuracy", "train_r2", "val_r2", "train_mae", "val_mae", "train_loss", "val_loss",
           "best_epoch", "epochs_run", "returned_epoch")
TEST_METRICS = ("test_loss", "test_accuracy", "test_r2", "test_mae")
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_EXPECT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class ExpectationSyntaxError(ValueError):
    pass


def known_metric(name: str) -> bool:
    return name in METRICS or name.startswith("test_")


def lower_is_better(metric: str) -> bool:
    """Losses and mean absolute errors fall as a model improves; accuracy and R² rise."""
    return metric.endswith(("_loss", "_mae"))


def default_baseline_metric(summary: Any) -> str:
    """val_accuracy, or val_r2 for a regression job (its summary has no accuracy)."""
    if summary is not None and summary.get("val_accuracy") is None and summary.get("val_r2") is not None:
        return "val_r2"
    return "val_accuracy"


@dataclass(frozen=True)
class Expectation:
    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> "Expectation":
        match = _EXPECT.match(text)
        if not match:
            raise ExpectationSyntaxError(f"{text!r} is not METRIC OP NUMBER (e.g. 'val_accuracy>=0.95'); "
                                         f"OP is one of {', '.join(OPERATORS)}.")
        metric, op, number = match.groups()
        if not known_metric(metric):
            raise ExpectationSyntaxError(f"Unknown metric {metric!r} in {text!r}: use one of "
                                         f"{', '.join(METRICS + TEST_METRICS)}.")
        return cls(metric, op, float(number))

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


@dataclass
class Baseline:
    job_id: str
    metric: str
    max_drop: float
    value: float


@dataclass
class Outcome:
    """One test case: what was expected, what was measured, whether it held."""

    name: str
    passed: bool
    measured: str
    detail: str = ""


def _fmt(value: Any) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def evaluate(job: Job, diagnosis: Diagnosis | None, expectations: list[Expectation], fail_on: list[str],
             verdicts: list[str], baseline: Baseline | None) -> list[Outcome]:
    summary = job.summary
    outcomes = [Outcome("job succeeded", job.status == "succeeded", job.status)]
    for exp in expectations:
        value = summary.get(exp.metric) if summary is not None else None
        held = isinstance(value, (int, float)) and OPERATORS[exp.op](value, exp.threshold)
        detail = "" if held else (f"{exp.metric} is not available for this job" if value is None else
                                  f"{exp.metric} = {_fmt(value)}, expected {exp.op} {exp.threshold:g}")
        outcomes.append(Outcome(str(exp), bool(held), _fmt(value), detail))
    verdict = diagnosis.verdict if diagnosis is not None else None
    if verdicts:
        held = verdict in verdicts
        outcomes.append(Outcome(f"verdict in {'|'.join(verdicts)}" if len(verdicts) > 1 else f"verdict=={verdicts[0]}",
                                held, _fmt(verdict), "" if held else f"the diagnosis' verdict is {_fmt(verdict)}"))
    for code in fail_on:
        found = [f for f in (diagnosis.findings if diagnosis else []) if f.code == code]
        hit = bool(found) or verdict == code
        if found:
            where = f" at epoch {found[0].epoch}" if found[0].epoch is not None else ""
            measured = f"found{where} ({found[0].severity})"
        else:
            measured = "verdict" if hit else "absent"
        detail = ""
        if found:
            detail = found[0].explanation or f"the diagnosis found {code}"
        elif hit:
            detail = f"the verdict is {code}"
        outcomes.append(Outcome(f"no {code}", not hit, measured, detail))
    if baseline is not None:
        value = summary.get(baseline.metric) if summary is not None else None
        name = f"{baseline.metric} within {baseline.max_drop:g} of baseline {baseline.job_id[:8]} ({baseline.value:.4f})"
        if not isinstance(value, (int, float)):
            outcomes.append(Outcome(name, False, "not measured", f"{baseline.metric} is not available for this job"))
        else:
            drop = value - baseline.value if lower_is_better(baseline.metric) else baseline.value - value
            held = drop <= baseline.max_drop + 1e-12
            outcomes.append(Outcome(name, held, f"{value:.4f} (change {value - baseline.value:+.4f})",
                                    "" if held else f"{baseline.metric} regressed by {drop:.4f}, more than "
                                                    f"{baseline.max_drop:g}"))
    return outcomes


# --- JUnit XML ------------------------------------------------------------------

def junit_xml(suite: str, outcomes: list[Outcome], *, elapsed: float, properties: dict[str, Any],
              error: str | None = None, report: str = "", remedy: str | None = None) -> bytes:
    """One test case per expectation; ``error`` (the job failed, the service
    answered an error, the spec is invalid) becomes one errored test case.
    ``remedy`` (check --remedy) is added to each failed test case's output."""
    failures = sum(1 for o in outcomes if not o.passed)
    errors = 1 if error else 0
    tests = len(outcomes) + errors
    root = ET.Element("testsuites", name="trainrx", tests=str(tests), failures=str(failures), errors=str(errors),
                      time=f"{elapsed:.3f}")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(tests), failures=str(failures),
                         errors=str(errors), skipped="0", time=f"{elapsed:.3f}",
                         timestamp=datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    props = ET.SubElement(node, "properties")
    for key, value in properties.items():
        if value is not None:
            ET.SubElement(props, "property", name=key, value=str(value))
    if error:
        case = ET.SubElement(node, "testcase", classname="trainrx.check", name="job", time=f"{elapsed:.3f}")
        ET.SubElement(case, "error", message=error.splitlines()[0] if error else "", type="TrainrxError").text = error
    for outcome in outcomes:
        case = ET.SubElement(node, "testcase", classname="trainrx.check", name=outcome.name, time="0")
        ET.SubElement(case, "system-out").text = f"measured: {outcome.measured}" + (
            f"\n{remedy}" if remedy and not outcome.passed else "")
        if not outcome.passed:
            ET.SubElement(case, "failure", message=outcome.detail or f"measured {outcome.measured}",
                          type="ExpectationFailed").text = outcome.detail or outcome.measured
    if report:
        ET.SubElement(node, "system-out").text = report
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# --- GitHub Actions ------------------------------------------------------------------

def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_error(message: str, *, title: str = "trainrx check", file: str | None = None) -> str:
    """A ``::error`` workflow command (shown on the run and, with ``file``, on the file)."""
    props = [f"title={_escape_property(title)}"]
    if file:
        props.insert(0, f"file={_escape_property(file)}")
    return f"::error {','.join(props)}::{_escape_data(message)}"
