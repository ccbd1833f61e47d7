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
