# The API frontend: FastAPI + Triton gRPC client. Slim, non-root, no torch and no Ultralytics
# (the base dependencies of pyproject.toml and the `postgres` extra, psycopg 3, for a key store that
# several replicas share; the `export` extra is not installed). The context is the project
# (`.dockerignore` keeps out the rest), so every package of pyproject.toml is in the image.
# BASE: the upstream image, or a local stand-in where it cannot be pulled (docs/operations/docker.md).
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
# Bytecode only for what serving imports (the non-root user cannot write it later): every process
# start (each uvicorn worker, each `trident keys ...`) compiles 0.8 s less, for about 22 MB.
RUN pip install --no-cache-dir ".[postgres]" \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/pip /opt/venv/lib/python3*/site-packages/setuptools \
    && cd / && python -c "import frontend.app, trident.cli"

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --system --uid 10001 --home-dir /app --create-home trident \
    && mkdir /data && chown 10001 /data
WORKDIR /app
USER 10001
ENV PATH=/opt/venv/bin:$PATH \
    TRIDENT_HOST=0.0.0.0 \
    TRIDENT_PORT=8080 \
    TRIDENT_TRITON_HOST=triton \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2)"]
CMD ["trident", "serve"]
