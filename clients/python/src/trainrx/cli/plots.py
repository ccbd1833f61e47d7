"""``trainrx plot``, ``trainrx compare`` and ``trainrx report``: pictures and the HTML
report of jobs, saved to files (a CI job attaches them as artifacts)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from trainrx._client import Client
from trainrx.errors import APIError
from trainrx.resources.plots import PLOT_KINDS

_width = click.option("--width", type=click.IntRange(min=1), default=None, help="Pixels (server default 1200).")
_height = click.option("--height", type=click.IntRange(min=1), default=None, help="Pixels (server default 600).")
_dpi = click.option("--dpi", type=click.IntRange(min=1), default=None,
                    help="Text size relative to the picture (server default 100).")


def save(path: str, data: bytes) -> Path:
    """Write atomically: a CI step never finds half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@click.command()
@click.argument("job_id")
@click.option("--kind", type=click.Choice(PLOT_KINDS), default="curves", show_default=True,
              help="curves: loss and accuracy; gradients: per layer, log scale; activations: dead and saturated "
                   "units; steps: sampled per-step loss and gradient norm.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="The PNG to write (default: JOB_ID-KIND.png).")
@_width
@_height
@_dpi
@click.pass_obj
def plot(client: Client, job_id: str, kind: str, output: str | None, width: int | None, height: int | None,
         dpi: int | None) -> None:
    """Save a plot of a job as PNG, each finding's evidence drawn on it."""
    png = client.plots.job(job_id, kind, width=width, height=height, dpi=dpi)
    click.echo(str(save(output or f"{job_id}-{kind}.png", png)))


@click.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--metric", default=None, help="val_accuracy (default), train_accuracy, val_loss, train_loss, "
                                             "val_r2, train_r2 or learning_rate.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="compare.png", show_default=True)
@_width
@_height
@_dpi
@click.pass_obj
def compare(client: Client, job_ids: tuple[str, ...], metric: str | None, output: str, width: int | None,
            height: int | None, dpi: int | None) -> None:
    """Save one metric of several jobs (JOB_IDS, up to 8) overlaid, as PNG."""
    png = client.plots.compare(job_ids, metric=metric, width=width, height=height, dpi=dpi)
    click.echo(str(save(output, png)))


def save_report(client: Client, job_id: str, path: str) -> None:
    """``trainrx check --report``: the report of the checked job, whatever its outcome; a
    report that cannot be fetched is a warning, never the check's result."""
    try:
        save(path, client.plots.report(job_id).encode())
    except (APIError, OSError) as exc:
        click.echo(f"warning: the report was not saved ({type(exc).__name__}: {exc})", err=True)


@click.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="The HTML file to write (default: JOB_ID-report.html).")
@click.pass_obj
def report(client: Client, job_id: str, output: str | None) -> None:
    """Save the job's report: one HTML page that works offline (plots inlined)."""
    html = client.plots.report(job_id)
    click.echo(str(save(output or f"{job_id}-report.html", html.encode())))
