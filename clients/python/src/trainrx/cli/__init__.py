"""The ``trainrx`` command: a thin layer over the SDK.

Errors print as ``ErrorType: message``. Exit codes: 0 success, 1 an expectation
failed (``check``), 2 invalid spec or command line, 3 the service is
unreachable or answered an error, 4 the job failed or timed out.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from trainrx._client import Client
from trainrx._constants import DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_WAIT_TIMEOUT
from trainrx._specs import load_spec
from trainrx._version import __version__
from trainrx.cli import render
from trainrx.cli.check import (EXPECTATION_FAILED, INVALID, JOB_FAILED, OK, SERVICE_ERROR, Baseline, Expectation,
                               ExpectationSyntaxError, Outcome, default_baseline_metric, evaluate, github_error,
                               junit_xml, known_metric)
from trainrx.errors import (APIError, NotFoundError, SpecError, TrainrxError,
                            UnprocessableEntityError, WaitTimeoutError, format_field_errors)
from trainrx.types import Diagnosis, Job


def _fail(exc: BaseException, code: int) -> NoReturn:
    if isinstance(exc, UnprocessableEntityError):
        click.echo(f"{type(exc).__name__}: {exc.message}", err=True)
        if exc.errors:
            click.echo(format_field_errors(exc.errors), err=True)
    else:
        click.echo(f"{type(exc).__name__}: {exc}", err=True)
    sys.exit(code)


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, (UnprocessableEntityError, SpecError)):
        return INVALID
    if isinstance(exc, WaitTimeoutError):
        return JOB_FAILED
    return SERVICE_ERROR


class _Group(click.Group):
    """Turns SDK errors into ``ErrorType: message`` and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrainrxError as exc:
            _fail(exc, exit_code_for(exc))


def _client(ctx: click.Context) -> Client:
    return ctx.find_object(Client)  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _finished_code(job: Job) -> int:
    return OK if job.status == "succeeded" else JOB_FAILED


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="TRAINRX_URL", default=DEFAULT_BASE_URL, show_default=True,
              help="The API's base URL (env TRAINRX_URL).")
@click.option("--token", envvar="TRAINRX_TOKEN", default=None, help="Bearer token (env TRAINRX_TOKEN).")
@click.option("--request-timeout", type=float, default=None, help="Seconds per HTTP request.")
@click.option("--max-retries", type=click.IntRange(min=0), default=DEFAULT_MAX_RETRIES, show_default=True,
              help="Retries of a failed request that is safe to repeat.")
@click.version_option(__version__, prog_name="trainrx")
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None, request_timeout: float | None, max_retries: int) -> None:
    """trainrx: submit training jobs, follow them, read their diagnosis, gate CI on them."""
    kwargs: dict[str, Any] = {"base_url": url, "token": token, "max_retries": max_retries}
    if request_timeout is not None:
        kwargs["timeout"] = request_timeout
    ctx.obj = Client(**kwargs)
    ctx.call_on_close(ctx.obj.close)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--follow", is_flag=True, help="Follow the job until it ends (exit 4 unless it succeeds).")
@click.option("--timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, show_default=True,
              help="With --follow: seconds to wait.")
@click.option("--idempotency-key", default=None, help="Make a retried submit return the first job.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_context
def submit(ctx: click.Context, spec: str, follow: bool, timeout: float, idempotency_key: str | None,
           as_json: bool) -> None:
    """Submit the training request in SPEC (a YAML or JSON file)."""
    client = _client(ctx)
    job = client.jobs.create(spec, idempotency_key=idempotency_key)
    if not follow:
        _print_json(job.raw) if as_json else click.echo(f"{job.id} {job.status}")
        return
    click.echo(f"submitted {job.id}", err=True)
    job = client.jobs.wait(job.id, timeout=timeout, progress=True)
    _print_json(job.raw) if as_json else click.echo(render.job_text(job))
    sys.exit(_finished_code(job))


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show a job."""
    job = _client(ctx).jobs.get(job_id)
    _print_json(job.raw) if as_json else click.echo(render.job_text(job))


@main.command(name="list")
@click.option("--status", "status_", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
              default=None, help="Only jobs in this status.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx: click.Context, status_: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    jobs = list(_client(ctx).jobs.list(status=status_, limit=limit, page_size=min(limit, 100)))
    _print_json([j.raw for j in jobs]) if as_json else click.echo(render.jobs_table(jobs))


@main.command()
@click.argument("job_id")
@click.option("--timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, show_default=True)
@click.pass_context
def follow(ctx: click.Context, job_id: str, timeout: float) -> None:
    """Follow a job live until it ends (exit 4 unless it succeeds)."""
    job = _client(ctx).jobs.wait(job_id, timeout=timeout, progress=True)
    click.echo(render.job_text(job))
    sys.exit(_finished_code(job))


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def curves(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """The learning curves as a table (one row per epoch)."""
    result = _client(ctx).jobs.curves(job_id)
    _print_json(result.raw) if as_json else click.echo(render.curves_table(result))


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def diagnosis(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """The diagnosis: verdict, findings with their evidence, suggested patches."""
    result = _client(ctx).jobs.diagnosis(job_id)
    _print_json(result.raw) if as_json else click.echo(render.diagnosis_text(result))


@main.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to save (default: JOB_ID.safetensors, or JOB_ID.pt2 with --model).")
@click.option("--model", "exported", is_flag=True, help="The exported model (.pt2) instead of the weights.")
@click.pass_context
def download(ctx: click.Context, job_id: str, output: str | None, exported: bool) -> None:
    """Download the trained weights (safetensors) or the exported model."""
    jobs = _client(ctx).jobs
    path = jobs.download_model(job_id, output) if exported else jobs.download_weights(job_id, output)
    click.echo(str(path))


@main.command()
@click.argument("job_id")
@click.pass_context
def cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel a job (a running one stops at its next step)."""
    job = _client(ctx).jobs.cancel(job_id)
    click.echo(f"{job.id} {job.status}" + (" (stopping)" if job.status == "running" else ""))


@main.command()
@click.argument("job_id")
@click.pass_context
def logs(ctx: click.Context, job_id: str) -> None:
    """The job's log lines."""
    click.echo(_client(ctx).jobs.logs(job_id), nl=False)


@main.group()
def datasets() -> None:
    """Built-in datasets and uploads."""


@datasets.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def datasets_list(ctx: click.Context, as_json: bool) -> None:
    """The datasets a job can train on."""
    items = _client(ctx).datasets.list()
    if as_json:
        _print_json([d.raw for d in items])
        return
    rows = [(d.id or d.name, d.name or "", d.task or "", _shape(d.input_shape), d.features, d.classes,
             d.samples or d.rows, d.test_samples or 0) for d in items]
    click.echo(render.table(["dataset", "name", "task", "shape", "features", "classes", "samples", "test"], rows))


def _shape(shape: list[int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "-"


@datasets.command(name="upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="A name for the dataset.")
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None,
              help="regression: y / label are numeric targets (default: classification, labels 0..k-1).")
@click.option("--input-shape", default=None, metavar="C,L | C,H,W",
              help="How a cnn sees a row, e.g. 1,8,8 (the product must be the feature count).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def datasets_upload(ctx: click.Context, file: str, name: str | None, task: str | None, input_shape: str | None,
                    as_json: bool) -> None:
    """Upload a .npz (X, y) or .csv (with a label column) file."""
    shape = None
    if input_shape is not None:
        try:
            shape = [int(n) for n in input_shape.replace("[", "").replace("]", "").split(",")]
        except ValueError:
            raise click.BadParameter("give 2 or 3 integers separated by commas, e.g. 1,8,8",
                                     param_hint="--input-shape") from None
    dataset = _client(ctx).datasets.upload(file, name=name, task=task, input_shape=shape)
    _print_json(dataset.raw) if as_json else click.echo(f"{dataset.id} {dataset.name or ''}".rstrip())


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


class _CheckRun:
    """Everything `check` prints and writes, in one place, whatever the outcome."""

    def __init__(self, spec: str, junit: str | None, client: Client, report: str | None = None) -> None:
        self.spec, self.junit, self.client, self.report = spec, junit, client, report
        self.github = os.environ.get("GITHUB_ACTIONS") == "true"
        self.started = time.monotonic()
        self.properties: dict[str, Any] = {"spec": spec}

    def finish(self, code: int, outcomes: list[Outcome], *, error: str | None = None, job: Job | None = None,
               diagnosis: Diagnosis | None = None) -> NoReturn:
        ok_mark, fail_mark = render.marks()
        lines = []
        if job is not None:
            took = f" in {job.timings.total_s:.1f} s" if job.timings and job.timings.total_s is not None else ""
            lines.append(f"trainrx check {self.spec}: job {job.id} {job.status}{took}")
        else:
            lines.append(f"trainrx check {self.spec}")
        for o in outcomes:
            lines.append(f"  {ok_mark if o.passed else fail_mark} {o.name}  (measured {o.measured})"
                         + ("" if o.passed or not o.detail else f"\n      {o.detail}"))
        if error:
            lines.append(f"  {fail_mark} {error}")
        if diagnosis is not None:
            lines.append(render.diagnosis_text(diagnosis, limit=3))
        failed = [o for o in outcomes if not o.passed]
        verdict = {OK: "passed", EXPECTATION_FAILED: f"failed: {len(failed)} of {len(outcomes)} expectations",
                   INVALID: "invalid", SERVICE_ERROR: "service error", JOB_FAILED: "job failed"}[code]
        lines.append(f"Result: {verdict} (exit {code})")
        report = "\n".join(lines)
        click.echo(report)
        if self.junit:
            Path(self.junit).parent.mkdir(parents=True, exist_ok=True)
            Path(self.junit).write_bytes(junit_xml(
                f"trainrx check {self.spec}", outcomes, elapsed=time.monotonic() - self.started,
                properties={**self.properties, "job_id": job.id if job else None,
                            "verdict": diagnosis.verdict if diagnosis else None},
                error=error, report=report))
        if self.report and job is not None:
            save_report(self.client, job.id, self.report)
        if self.github:
            file = self.spec if Path(self.spec).is_file() else None
            for o in failed:
                click.echo(github_error(f"{o.name}: {o.detail or 'measured ' + o.measured}", file=file))
            if error:
                click.echo(github_error(error, file=file))
        sys.exit(code)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--expect", "expect", multiple=True, metavar="'METRIC OP VALUE'",
              help="e.g. 'val_accuracy>=0.95' or 'val_r2>=0.5'; metrics from the job summary (train_/val_/test_ "
                   "accuracy and loss; r2 and mae for regression; best_epoch). Repeatable.")
@click.option("--fail-on", "fail_on", multiple=True, metavar="CODES",
              help="Fail when the diagnosis has any of these finding codes (comma-separated, repeatable).")
@click.option("--verdict", "verdicts", multiple=True, metavar="VERDICT",
              help="Require this diagnosis verdict (healthy, training_problem, overfitting); repeat to allow several.")
@click.option("--baseline", default=None, metavar="JOB_ID", help="Compare with this earlier job.")
@click.option("--metric", default=None, help="With --baseline: the metric compared (default val_accuracy; val_r2 "
                                              "for a regression baseline). *_loss and *_mae: lower is better.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=None,
              help="With --baseline: the largest allowed regression, absolute (default 0).")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="Write JUnit XML here.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Save the job's HTML report here (plots, diagnosis, patches; works offline).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_WAIT_TIMEOUT,
              show_default=True, help="Seconds to wait for the job; past it the job is cancelled (exit 4).")
@click.option("--progress/--no-progress", default=True, help="Show the job's progress on stderr.")
@click.pass_context
def check(ctx: click.Context, spec: str, expect: tuple[str, ...], fail_on: tuple[str, ...],
          verdicts: tuple[str, ...], baseline: str | None, metric: str | None, max_drop: float | None,
          junit: str | None, report_path: str | None, timeout: float, progress: bool) -> None:
    """Train SPEC and check the result: exit 0 when every expectation holds, 1 when
    one fails, 2 for an invalid spec or command line, 3 when the service is
    unreachable or answers an error, 4 when the job fails or times out."""
    try:
        expectations = [Expectation.parse(e) for e in expect]
    except ExpectationSyntaxError as exc:
        raise click.BadParameter(str(exc), param_hint="--expect") from None
    if baseline is None and (metric is not None or max_drop is not None):
        raise click.UsageError("--metric and --max-drop need --baseline JOB_ID.")
    if metric is not None and not known_metric(metric):
        raise click.BadParameter(f"unknown metric {metric!r}", param_hint="--metric")
    codes, allowed = _split(fail_on), _split(verdicts)
    client = _client(ctx)
    run = _CheckRun(spec, junit, client, report_path)

    try:
        request = load_spec(spec)
    except SpecError as exc:
        run.finish(INVALID, [], error=str(exc))

    base: Baseline | None = None
    if baseline is not None:
        try:
            earlier = client.jobs.get(baseline)
        except NotFoundError:
            raise click.BadParameter(f"no job {baseline!r} on {client.base_url}", param_hint="--baseline") from None
        except APIError as exc:
            run.finish(SERVICE_ERROR, [], error=f"{type(exc).__name__}: {exc}")
        metric = metric or default_baseline_metric(earlier.summary)
        value = earlier.summary.get(metric) if earlier.summary is not None else None
        if not isinstance(value, (int, float)):
            raise click.BadParameter(f"job {baseline} has no {metric} to compare with", param_hint="--baseline")
        base = Baseline(baseline, metric, max_drop or 0.0, float(value))
        run.properties["baseline"] = baseline

    try:
        job = client.jobs.create(request)
    except UnprocessableEntityError as exc:
        fields = format_field_errors(exc.errors or {})
        run.finish(INVALID, [], error=f"The spec is invalid: {exc.message}" + (f"\n{fields}" if fields else ""))
    except APIError as exc:
        run.finish(SERVICE_ERROR, [], error=f"{type(exc).__name__}: {exc}")
    run.properties["job_id"] = job.id
    click.echo(f"submitted job {job.id}", err=True)

    try:
        job = client.jobs.wait(job.id, timeout=timeout, progress=progress)
    except WaitTimeoutError:
        try:
            client.jobs.cancel(job.id)
            note = "; it was cancelled"
        except APIError:
            note = ""
        run.finish(JOB_FAILED, [], error=f"The job {job.id} did not finish within {timeout:g} s{note}.", job=job)
    except APIError as exc:
        run.finish(SERVICE_ERROR, [], error=f"{type(exc).__name__}: {exc}", job=job)

    try:
        diag = client.jobs.diagnosis(job.id)
    except APIError as exc:
        run.finish(SERVICE_ERROR, [], error=f"{type(exc).__name__}: {exc}", job=job)
    outcomes = evaluate(job, diag, expectations, codes, allowed, base)
    if job.status != "succeeded":
        reason = f"{job.error.type}: {job.error.message}" if job.error else job.status
        run.finish(JOB_FAILED, outcomes, error=f"The job {job.id} {job.status} ({reason}).", job=job, diagnosis=diag)
    run.finish(OK if all(o.passed for o in outcomes) else EXPECTATION_FAILED, outcomes, job=job, diagnosis=diag)



from trainrx.cli.plots import compare, plot, report, save_report  # noqa: E402  (their own module)

from trainrx.cli.sweep import sweep  # noqa: E402

for _command in (plot, compare, report, sweep):
    main.add_command(_command)
