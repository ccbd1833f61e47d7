"""gunicorn settings for the API, shared by ``make run``, ``make api``, the Dockerfile
and the tests: ``gunicorn -c service/gunicorn_conf.py --bind HOST:PORT service.wsgi:app``.

Why gevent: ``GET /v1/jobs/{id}/events`` keeps a response open for a job's whole
life. Under a synchronous or threaded worker every open stream would pin a
thread (gthread's 2 x 8 threads = 16 followers and the API stops answering);
under gevent a stream is a greenlet parked on its Redis socket, so one process
serves up to ``worker_connections`` of them next to ordinary requests. The
stack is cooperative under gevent's monkey-patching: redis-py and httpx are pure
Python sockets, SQLAlchemy's pool locks are patched, psycopg 3 supports gevent
natively since 3.1.14, and SQLite calls are short (WAL; readers never wait).

Nothing here may import the app or anything gevent patches: gunicorn reads this
file before the worker monkey-patches the standard library.
"""

worker_class = "gevent"
workers = 2
worker_connections = 1000  # open connections (streams included) per worker process
graceful_timeout = 10  # streams end at the stop; clients reconnect with Last-Event-ID


# --- metrics and logs ----------------------------------------------------------------
# GET /metrics sums the request counters of every gunicorn process (prometheus-client's
# multiprocess mode): each process writes its values to files in PROMETHEUS_MULTIPROC_DIR.
# The directory must be set before a worker imports prometheus_client, i.e. here, in the
# master, before the fork; it is emptied at start so that a previous run's counts do not
# add up with this one's. Unset, a private temporary directory is made and removed at exit.
import os as _os
import shutil as _shutil
import tempfile as _tempfile

from core.logging_setup import gunicorn_logconfig as _gunicorn_logconfig

_own_metrics_dir = not _os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    _os.environ["PROMETHEUS_MULTIPROC_DIR"] = _tempfile.mkdtemp(prefix="trainrx-metrics-")
_metrics_dir = _os.environ["PROMETHEUS_MULTIPROC_DIR"]
_os.makedirs(_metrics_dir, exist_ok=True)
for _name in _os.listdir(_metrics_dir):
    if _name.endswith(".db"):
        _os.remove(_os.path.join(_metrics_dir, _name))

# TRAINRX_LOG_FORMAT=json: gunicorn's own lines are JSON too (core/logging_setup.py).
logconfig_dict = _gunicorn_logconfig() or {}

# --- behind a TLS proxy --------------------------------------------------------------
# The front ends whose X-Forwarded-Proto gunicorn believes: request.is_secure (and so the
# session cookie's Secure flag) holds behind a TLS proxy only when the proxy's address is
# listed. Comma-separated addresses or networks, or `*` when nothing but the proxy can reach
# gunicorn. Unset: gunicorn's own default (FORWARDED_ALLOW_IPS, else 127.0.0.1,::1).
forwarded_allow_ips = (_os.environ.get("TRAINRX_FORWARDED_ALLOW_IPS") or _os.environ.get("FORWARDED_ALLOW_IPS")
                       or "127.0.0.1,::1")


def child_exit(server, worker):
    """A dead process's gauges must not be reported any more (its counters stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        _shutil.rmtree(_metrics_dir, ignore_errors=True)
