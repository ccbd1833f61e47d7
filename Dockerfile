# syntax=docker/dockerfile:1
# Three images from one file, each its own target (docker-compose.yml builds them):
#
#   api         gunicorn + Flask; requirements-api.txt, no torch
#   worker-cpu  Celery worker; requirements.txt with torch's CPU build
#   worker-gpu  Celery worker; requirements.txt with torch's CUDA build (PyPI's x86_64 wheel)
#
# Dependencies are installed into /opt/venv in a build stage and copied into a
# final stage without pip's caches or build tools; everything runs as the
# unprivileged user trainrx (uid 10001). Versions are pinned: the base image by
# tag, Python packages exactly (requirements*.txt).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 trainrx \
    && useradd --system --uid 10001 --gid trainrx --home-dir /app --no-create-home --shell /usr/sbin/nologin trainrx
WORKDIR /app

# --- build stages: a virtualenv each ------------------------------------------------
FROM base AS api-deps
COPY requirements-api.txt .
RUN python -m venv /opt/venv && pip install -r requirements-api.txt

FROM base AS worker-cpu-deps
# torch's CPU build (no CUDA libraries: about 1.5 GB smaller) comes from PyTorch's own
# index, pinned to the same version as requirements.txt; the rest from the default index.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements.txt .
RUN python -m venv /opt/venv \
    && pip install --index-url "${TORCH_CPU_INDEX}" torch==2.13.0 \
    && pip install -r requirements.txt
# The workers import the network definition from the SDK package (trainrx.network, one definition
# for training, export and load_model); its dependencies are pinned in requirements.txt.
COPY clients/python clients/python
RUN pip install --no-deps ./clients/python

FROM base AS worker-gpu-deps
# PyPI's torch 2.13.0 wheel for x86_64 Linux is the CUDA build; it brings its CUDA
# runtime as nvidia-* wheels, so the base image needs no CUDA toolkit. The host
# needs the NVIDIA driver and container toolkit (compose's GPU reservation).
COPY requirements.txt .
RUN python -m venv /opt/venv && pip install -r requirements.txt
# The workers import the network definition from the SDK package (trainrx.network, one definition
# for training, export and load_model); its dependencies are pinned in requirements.txt.
COPY clients/python clients/python
RUN pip install --no-deps ./clients/python

# --- final images ----------------------------------------------------------------------
FROM base AS app
COPY core core
COPY service service
COPY workers workers
ENV TRAINRX_DATA_DIR=/data
RUN mkdir -p /data && chown trainrx:trainrx /data
VOLUME ["/data"]

FROM app AS api
COPY --from=api-deps /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
    CMD ["python", "-m", "core.healthcheck", "api", "--url", "http://127.0.0.1:8000/healthz"]
# gevent workers (service/gunicorn_conf.py): a live event stream is a greenlet, not a thread.
CMD ["gunicorn", "-c", "service/gunicorn_conf.py", "--bind", "0.0.0.0:8000", "service.wsgi:app"]

FROM app AS worker-cpu
COPY --from=worker-cpu-deps /opt/venv /opt/venv
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["python", "-m", "core.healthcheck", "worker"]
CMD ["celery", "-A", "workers.celery_app", "worker", "-Q", "cpu", "--pool", "threads", "--concurrency", "1", \
     "-n", "cpu@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"]

FROM app AS worker-gpu
COPY --from=worker-gpu-deps /opt/venv /opt/venv
USER 10001:10001
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["python", "-m", "core.healthcheck", "worker"]
CMD ["python", "-m", "workers.gpu_workers", "--queue", "gpu"]
