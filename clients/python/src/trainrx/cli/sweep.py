"""``trainrx sweep``: run a request over a grid, random draws and seeds; print the results table
and the comparison findings."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from trainrx._client import Client
from trainrx._specs import load_spec
from trainrx.cli import render
from trainrx.cli.check import JOB_FAILED, OK
from trainrx.types import Sweep

RANDOM_KINDS = ("log_uniform", "uniform", "int_uniform", "choice")
_OPEN, _CLOSE = "[{", "]}"


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, braces and double quotes: ``[128],[128,128]`` is two values."""
    parts, depth, quoted, escaped, current = [], 0, False, False, []
    for char in text:
        if quoted:
            escaped = not escaped and char == "\\"
            quoted = escaped or char != '"'
        elif char == '"':
            quoted = True
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, lists, true, null, quoted strings), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _path_and_rest(option: str, raw: str) -> tuple[str, str]:
    path, sep, rest = raw.partition("=")
    if not sep or not path.strip() or not rest.strip():
        raise click.BadParameter(f"{raw!r}: expected PATH=VALUES", param_hint=option)
    return path.strip(), rest.strip()


def parse_grid(raw: str) -> tuple[str, list[Any]]:
    """``PATH=V1,V2,...`` -> (path, values)."""
    path, rest = _path_and_rest("--grid", raw)
    return path, [parse_value(v) for v in split_top_level(rest)]


def parse_random(raw: str) -> tuple[str, dict]:
    """``PATH=log_uniform:LO:HI`` (also uniform, int_uniform) or ``PATH=choice:V1,V2`` -> (path, distribution)."""
    path, rest = _path_and_rest("--random", raw)
    kind, _, arg = rest.partition(":")
    if kind not in RANDOM_KINDS or not arg:
        raise click.BadParameter(f"{raw!r}: expected PATH=KIND:LO:HI or PATH=choice:V1,V2 with KIND one of "
                                 f"{', '.join(RANDOM_KINDS)}", param_hint="--random")
    if kind == "choice":
        return path, {kind: [parse_value(v) for v in split_top_level(arg)]}
    bounds = [parse_value(v) for v in arg.split(":")]
    if len(bounds) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
        raise click.BadParameter(f"{raw!r}: {kind} needs two numbers, LO:HI", param_hint="--random")
    return path, {kind: bounds}


def _plus_minus() -> str:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "±".encode(encoding)
        return "±"
    except (UnicodeEncodeError, LookupError):
        return "+-"


def _stat(stats: dict | None, spec: str = ".4f") -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    return f"{render.number(stats['mean'], spec)} {_plus_minus()} {render.number(stats['std'], spec)}"


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def sweep_text(sweep: Sweep) -> str:
    """The results table (one row per combination) and the comparison findings."""
    paths = list(dict.fromkeys(p for row in sweep.results for p in row["values"]))
    metrics = list(dict.fromkeys(m for row in sweep.results for m in row["metrics"]))
    headers = [*paths, *metrics, "verdict", "best epoch", "time s", "n"]
    rows = [[*(_short(row["values"].get(p)) for p in paths), *(_stat(row["metrics"].get(m)) for m in metrics),
             row["verdict"] or "-", _stat(row["best_epoch"], ".1f"), _stat(row["time_s"], ".1f"),
             f"{row['finished']}/{len(row['seeds'])}"] for row in sweep.results]
    counts = ", ".join(f"{n} {status}" for status, n in sweep.counts.items() if n)
    lines = [f"sweep {sweep.id} {sweep.status} ({counts})", "", render.table(headers, rows)]
    findings = sweep.comparison.get("findings") or []
    if findings:
        lines += ["", "comparison:"]
    for finding in findings:
        lines.append(f"  [{finding['severity']}] {finding['code']}: {finding['explanation']}")
        for suggestion in finding.get("suggestions") or []:
            lines.append(f"      try {json.dumps(suggestion['patch'])}: {suggestion.get('why', '')}")
    return "\n".join(lines)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--grid", "grids", multiple=True, metavar="PATH=V1,V2",
              help="Values to try for a dotted path (JSON where they parse; split on top-level commas: "
                   "'architecture.hidden_layers=[128],[128,128]' is two values). Repeatable.")
@click.option("--random", "randoms", multiple=True, metavar="PATH=KIND:LO:HI",
              help="A random dimension: log_uniform, uniform or int_uniform with LO:HI, or choice:V1,V2. Repeatable.")
@click.option("--random-n", type=click.IntRange(min=1), default=None, help="Random draws in all (default 1).")
@click.option("--random-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the random draws.")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Run every combination with seeds 0..N-1 (default: once, with the spec's seed).")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None, help="Children running at a time.")
@click.option("--name", default=None, help="The sweep's name.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds to wait (default: until it ends); the sweep goes on.")
@click.option("--json", "as_json", is_flag=True, help="Print the sweep resource as JSON.")
@click.option("--no-wait", is_flag=True, help="Print the sweep as started and return.")
@click.pass_context
def sweep(ctx: click.Context, spec: str, grids: tuple[str, ...], randoms: tuple[str, ...], random_n: int | None,
          random_seed: int, seeds: int | None, max_parallel: int | None, name: str | None, timeout: float | None,
          as_json: bool, no_wait: bool) -> None:
    """Run the request in SPEC (YAML or JSON) over a grid, random draws and seeds; print the results
    table (mean ± std over seeds) and the comparison findings. Exit 0 when the sweep is done, 4 when it
    was cancelled or did not end within --timeout."""
    grid = dict(parse_grid(g) for g in grids)
    space = dict(parse_random(r) for r in randoms)
    if random_n is not None and not space:
        raise click.UsageError("--random-n needs at least one --random PATH=KIND:LO:HI.")
    random = {"n": random_n or 1, "seed": random_seed, "space": space} if space else None
    client = ctx.find_object(Client)
    started = client.sweeps.create(base=load_spec(spec), grid=grid or None, random=random,
                                   seeds=list(range(seeds)) if seeds else None, max_parallel=max_parallel, name=name)
    if no_wait:
        click.echo(json.dumps(started.raw, indent=2, default=str) if as_json else
                   f"{started.id} {started.status} ({started.size} runs)")
        return
    click.echo(f"sweep {started.id}: {started.size} runs, {started.max_parallel} at a time", err=True)
    done = client.sweeps.wait(started.id, timeout=timeout)
    click.echo(json.dumps(done.raw, indent=2, default=str) if as_json else sweep_text(done))
    sys.exit(OK if done.status == "done" else JOB_FAILED)
