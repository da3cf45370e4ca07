# One image for every part of the service; the command picks which one runs:
#   taas api --host 0.0.0.0 --port 8000   (the default)
#   taas worker
#   taas migrate
FROM python:3.11-slim

# Where torch comes from. The default CPU wheels keep the image free of CUDA libraries
# (the API and a CPU worker never need them); the GPU worker's image is built with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
# Its wheels bring their own CUDA libraries; the host supplies only the driver (through
# the NVIDIA container toolkit).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

# Logs reach `docker logs` as they are written; pip keeps no cache in the image.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, in its own layer: it is by far the largest and changes least, so code edits
# rebuild only the layers below. Once it is installed, the project's "torch>=2.4" is
# satisfied and `pip install .` never pulls a different (CUDA) build from PyPI.
RUN pip install --index-url "$TORCH_INDEX" "torch>=2.4"

# A regular (non-editable) install: the packages, the `taas` command and the migrations
# (Alembic's env.py, script.py.mako and versions/, as package data) go to site-packages,
# where app/migrate.py looks for them. Nothing of the source tree stays in the image.
WORKDIR /build
COPY pyproject.toml ./
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
RUN pip install . && rm -rf /build

# Run as an unprivileged user. /data is created owned by it before it is declared a
# volume, so a fresh named volume mounted there starts out writable by that user.
RUN useradd --create-home --uid 10001 taas \
    && mkdir -p /data /srv \
    && chown taas:taas /data /srv
USER taas
WORKDIR /srv

# Datasets, checkpoints and weights; with the full stack the database is Postgres, so this
# holds only artifacts, shared by the API (which stores uploads) and the workers (which read them).
ENV TAAS_DATA_DIR=/data
VOLUME ["/data"]

EXPOSE 8000

# Liveness of the API (the slim image has no curl). urlopen raises on a refused connection
# or a non-2xx answer, so the check exits non-zero. Compose turns it off for the workers
# and the migration, which run the same image but serve no HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["taas", "api", "--host", "0.0.0.0", "--port", "8000"]
