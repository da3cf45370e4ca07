# One image for every part of the service; the command picks which one runs:
#   taas api --host 0.0.0.0 --port 8000   (the default)
#   taas worker
#   taas migrate
#
# Build arguments (docker-compose.yml passes them; defaults suit a machine with internet):
#   BASE_IMAGE     any Debian bookworm image with or without Python. The default has it; a
#                  bare Debian image (e.g. made with debootstrap where no registry can be
#                  reached) gets Debian's python3 (3.11) from apt.
#   TORCH_VERSION  the one torch release every image runs, the same one the Makefile pins.
#   TORCH_INDEX    where torch comes from: the CPU wheels by default (no CUDA libraries in
#                  the API's or a CPU worker's image); the GPU worker's build names a CUDA
#                  index. Empty: PyPI only.
#   TORCH_WHEELS   a folder searched for wheels before any index: docker/local/wheels,
#                  where a torch wheel already on the build machine can be put (see
#                  docker/local/README.md). Empty: no local wheels (the GPU build).
#   RUNTIME_PACKAGES  Debian packages the final image needs beyond Python. Empty for the
#                  CPU image; the GPU image takes a C++ compiler and Python's headers,
#                  which torch.compile needs at run time (Triton builds its launcher,
#                  inductor its C++ kernels). Without them `compile: true` fails the job
#                  with "No working C++ compiler"; `compile: auto` never compiles on a CPU.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- runtime: Python and RUNTIME_PACKAGES; both stages below start from it ------------
FROM ${BASE_IMAGE} AS runtime
ARG RUNTIME_PACKAGES=""
RUN packages="$RUNTIME_PACKAGES"; \
    command -v python3 >/dev/null || packages="python3 $packages"; \
    if [ -n "$packages" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends $packages \
        && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi
# (apt-get clean: a debootstrap base, unlike the registry's Debian images, keeps the
# downloaded packages and apt's caches.) Logs reach `docker logs` as they are written;
# the venv's commands come first.
ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# ---- build: a venv with torch, the dependencies, then the project ----------------------
FROM runtime AS build
# Debian's python3 makes a venv only with python3-venv; it stays in this stage.
RUN if ! python3 -c "import ensurepip" 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3-venv \
        && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python3 -m venv /opt/venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120

# docker/local/: wheels and a CA bundle for pip (a proxy's), both optional, never in the
# final image. Without BuildKit there are no build secrets, so the bundle comes this way.
COPY docker/local/ /local/
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_WHEELS=/local/wheels

# torch first, in its own layer: by far the largest and the one that changes least. The
# local version (+cpu, +cu128) sorts above PyPI's plain 2.13.0, so pip takes the index's
# or the local wheel's build, never PyPI's default CUDA one, for the CPU image.
RUN if [ -f /local/ca-certificates.crt ]; then export PIP_CERT=/local/ca-certificates.crt; fi \
    && pip install \
        ${TORCH_WHEELS:+--find-links "$TORCH_WHEELS"} \
        ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        "torch==${TORCH_VERSION}"

# The project's dependencies, read from pyproject.toml alone: a code edit does not
# invalidate this layer, only a dependency change does.
COPY pyproject.toml /build/
RUN if [ -f /local/ca-certificates.crt ]; then export PIP_CERT=/local/ca-certificates.crt; fi \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /build/requirements.txt \
    && pip install -r /build/requirements.txt "torch==${TORCH_VERSION}"

# A regular (non-editable) install: the packages, the `taas` command, the migrations and
# the package data (app/migrate.py finds Alembic's files next to the installed packages).
# pip leaves the venv: the final image installs nothing. (setuptools stays: torch.compile
# and torch.utils.cpp_extension import it.)
COPY app /build/app
COPY worker /build/worker
COPY migrations /build/migrations
RUN if [ -f /local/ca-certificates.crt ]; then export PIP_CERT=/local/ca-certificates.crt; fi \
    && pip install --no-deps /build \
    && pip uninstall -y pip

# ---- final: the runtime, the venv, an unprivileged user --------------------------------
FROM runtime
COPY --from=build /opt/venv /opt/venv

# /data is made owned by the user before it is declared a volume, so a fresh named volume
# mounted there starts out writable by that user.
RUN useradd --create-home --uid 10001 taas \
    && mkdir -p /data /srv \
    && chown taas:taas /data /srv
USER taas
WORKDIR /srv

# Datasets, checkpoints, weights and the admin token; with the full stack the database is
# Postgres, so this holds only artifacts, shared by the API and the workers.
ENV TAAS_DATA_DIR=/data
VOLUME ["/data"]

EXPOSE 8000

# Liveness of the API (there is no curl). urlopen raises on a refused connection or a
# non-2xx answer, so the check exits non-zero. Compose turns it off for the workers and
# the migration, which run the same image but serve no HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["taas", "api", "--host", "0.0.0.0", "--port", "8000"]
