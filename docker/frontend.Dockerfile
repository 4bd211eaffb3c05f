# The API frontend: FastAPI + Triton gRPC client. Slim, non-root, no torch and no Ultralytics
# (the base dependencies of pyproject.toml and the `postgres` extra, psycopg 3, for a key store that
# several replicas share; the `export` extra is not installed).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY store store
COPY trident trident
COPY exporter exporter
COPY frontend frontend
COPY pipeline pipeline
COPY postprocess postprocess
RUN pip install --no-cache-dir --prefix=/install ".[postgres]"

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /app --create-home trident \
    && mkdir /data && chown 10001 /data
WORKDIR /app
USER 10001
ENV TRIDENT_HOST=0.0.0.0 \
    TRIDENT_PORT=8080 \
    TRIDENT_TRITON_HOST=triton \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2)"]
CMD ["trident", "serve"]
