# tickvault image: the collector and api services of deploy/docker-compose.yml.
#   docker build -t tickvault:0.1.0 .
# Two stages: wheels are built with the full toolchain, the runtime image only installs them.
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
# a C compiler for the Cython fast paths (setup.py); the runtime stage needs none
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.10-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TICKVAULT_DATA_DIR=/var/lib/tickvault \
    TICKVAULT_METRICS_PORT=9108
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/tickvault --create-home tickvault
USER tickvault
WORKDIR /var/lib/tickvault
EXPOSE 9108 8000
# Liveness: the monitoring server answers /health while the event loop runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/health', timeout=3)"]
ENTRYPOINT []
CMD ["tickvault", "--help"]
