FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
# torch==2.13.0 from PyPI is the CUDA build on x86_64; GPU workers need it, CPU-only images may
# swap in the CPU wheel index.
RUN pip install --no-cache-dir -r requirements.txt
# The workers import the network definition from the SDK package (trainrx.network); its dependencies
# are pinned in requirements.txt.
COPY clients/python clients/python
RUN pip install --no-cache-dir --no-deps ./clients/python
COPY core core
COPY service service
COPY workers workers
ENV TRAINRX_DATA_DIR=/data PORT=8000
EXPOSE 8000
# gevent workers (service/gunicorn_conf.py): a live event stream is a greenlet, not a thread.
CMD ["sh", "-c", "gunicorn -c service/gunicorn_conf.py --bind 0.0.0.0:${PORT} service.wsgi:app"]
