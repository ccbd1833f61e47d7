"""Reading an upload in a child process of its own, so that the API never does it itself.

The API runs gunicorn's gevent workers: one process serves every request and
stream with cooperative greenlets, so seconds of NumPy work on one upload would
stall every other request of that process (three large uploads once stalled
``/healthz`` for 10 s), and a hostile file's memory would be the API's.

Why one fresh process per upload rather than a pool:
- waiting on it never blocks the event loop: under gevent's monkey-patching
  ``subprocess`` is cooperative (the greenlet parks on the pipes), and without
  gevent (Flask's test client, ``flask run``) it is an ordinary blocking call;
  ``concurrent.futures.ProcessPoolExecutor`` relies on helper threads and
  multiprocessing pipes that gevent does not patch reliably;
- the child is a fresh interpreter (exec, not a fork of the API), holds only
  the one upload, and gives all its memory back when it exits; its address
  space is capped (``RLIMIT_AS``) at its start-up size plus
  ``MEMORY_FACTOR`` times the upload limit, so a file that gets past the
  checks in core/upload_parsing.py still cannot take more than that;
- a crash, a runaway parse (``PARSE_TIMEOUT_S``) or a MemoryError ends only the
  child. The cost is the child's start (about 0.2 s: Python and NumPy), small
  next to reading an upload.

At most ``MAX_PARALLEL`` children run per API process; more uploads wait for a
slot (cooperatively), and after ``SLOT_WAIT_S`` get :class:`ParsersBusy`.

The upload reaches the child as an inherited file descriptor (werkzeug spools
uploads to a temporary file); the arrays come back as ``.npy`` files that the
API memory-maps, and the description (class counts, feature ranges) as JSON,
so the API process computes nothing over the data.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.datasets import CLASSIFICATION
from core.settings import Limits
from core.upload_parsing import ParsedDataset, UploadInvalid, parse_upload

log = logging.getLogger("trainrx.uploads")

ROOT = Path(__file__).resolve().parents[1]
PARSE_TIMEOUT_S = 300  # a 100 MiB CSV reads in a few seconds; past this the file is hostile
MAX_PARALLEL = 2  # children per API process
SLOT_WAIT_S = 60
# Peak memory of a parse, in upload limits: a .npz's raw X (<= 1) next to its float32
# copy (<= 1, both checked before reading); a CSV's float32 values (up to 2 for
# single-digit values), the features without the label column (2 more) and the
# finiteness masks. Plus MEMORY_SLACK for the zip directory, the CSV header and the like.
MEMORY_FACTOR = 6
MEMORY_SLACK = 256 * 1024 * 1024
X_FILE, Y_FILE = "x.npy", "y.npy"

_slots = threading.BoundedSemaphore(MAX_PARALLEL)  # a gevent semaphore once gunicorn has patched threading


class ParsersBusy(Exception):
    """Every parsing slot of this API process stayed taken for SLOT_WAIT_S."""


def parse_in_child(stream: BinaryIO, filename: str | None, limits: Limits, workdir: Path,
                   task: str = CLASSIFICATION) -> ParsedDataset:
    """Read and check an upload of ``task`` in a child process; raises UploadInvalid like parse_upload.

    ``stream`` must have a file descriptor (a werkzeug upload's spooled file gets one
    here); ``workdir`` takes the child's output for as long as this call runs. The
    arrays returned are memory-mapped read-only from files already unlinked."""
    fd = stream.fileno()  # a SpooledTemporaryFile moves to disk here
    stream.flush()
    if not _slots.acquire(timeout=SLOT_WAIT_S):
        raise ParsersBusy(f"{MAX_PARALLEL} uploads are being read already")
    try:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(dir=workdir, prefix=".parse."))
        try:
            result = _run_child(fd, filename, limits, out, task)
            if not result["ok"]:
                raise UploadInvalid(result["message"], too_large=result["too_large"])
            x = np.load(out / X_FILE, mmap_mode="r", allow_pickle=False)
            y = np.load(out / Y_FILE, mmap_mode="r", allow_pickle=False)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    finally:
        _slots.release()
    return ParsedDataset(x=x, y=y, format=result["format"], feature_names=result["feature_names"],
                         described=result["described"], task=task)


def _run_child(fd: int, filename: str | None, limits: Limits, out: Path, task: str) -> dict:
    command = [sys.executable, "-s", "-m", "core.upload_sandbox", str(fd), filename or "",
               json.dumps(asdict(limits)), str(out), task]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, pass_fds=(fd,), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=PARSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("reading an upload (%s) took over %d s; stopped", filename, PARSE_TIMEOUT_S)
        raise UploadInvalid(f"The file took longer than {PARSE_TIMEOUT_S} s to read; it is too large or "
                            "malformed.", too_large=True) from None
    try:
        return json.loads(done.stdout)
    except ValueError:
        log.error("reading an upload (%s) crashed (exit status %s): %s", filename, done.returncode,
                  done.stderr.decode(errors="replace")[-3000:])
        if done.returncode < 0:  # killed by a signal: the kernel's OOM killer, or a crash in C
            raise UploadInvalid("The file could not be read within the upload limits.", too_large=True) from None
        raise UploadInvalid("The file could not be read.") from None


# --- the child ----------------------------------------------------------------

def _cap_memory(limits: Limits) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as statm:
        started = int(statm.read().split()[0]) * page
    cap = started + MEMORY_FACTOR * limits.max_upload_bytes + MEMORY_SLACK
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _parse(fd: int, filename: str | None, limits: Limits, out: Path, task: str) -> dict:
    try:
        with os.fdopen(fd, "rb", closefd=False) as stream:
            stream.seek(0)
            parsed = parse_upload(stream, filename, limits, task)
        np.save(out / X_FILE, parsed.x, allow_pickle=False)
        np.save(out / Y_FILE, parsed.y, allow_pickle=False)
        return {"ok": True, "format": parsed.format, "feature_names": parsed.feature_names,
                "described": parsed.description()}
    except UploadInvalid as exc:
        return {"ok": False, "message": str(exc), "too_large": exc.too_large}
    except MemoryError:
        return {"ok": False, "too_large": True,
                "message": "The file needs more memory to read than the upload limits allow."}
    except Exception as exc:  # noqa: BLE001 — an untrusted file may break a reader in ways not foreseen
        traceback.print_exc()  # to the API's operator log, by way of _run_child
        return {"ok": False, "too_large": False, "message": f"The file could not be read ({type(exc).__name__})."}


def main(argv: list[str]) -> None:
    fd, filename, limits, out = int(argv[0]), argv[1] or None, Limits(**json.loads(argv[2])), Path(argv[3])
    task = argv[4]
    _cap_memory(limits)
    sys.stdout.write(json.dumps(_parse(fd, filename, limits, out, task)))


if __name__ == "__main__":
    main(sys.argv[1:])
