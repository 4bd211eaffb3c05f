# Triton on the CPU, exactly as the local runtime runs it (`trident triton`): the tritonserver of
# the nvidia-pytriton wheel, Python backend wrapping ONNX Runtime, models' default config.pbtxt.
# The stub embeds libpython3.11: the base must carry it (python:3.11-slim does).
ARG BASE=python:3.11-slim
FROM ${BASE}
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir . \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /app --create-home trident \
    && mkdir -p /opt/trident && chown trident /opt/trident
USER 10001
WORKDIR /app
ENV TRIDENT_TRITON_HOST=0.0.0.0 \
    TRIDENT_TRITON_RUNTIME_DIR=/opt/trident/triton-runtime \
    TRIDENT_MODEL_REPOSITORY=/models
RUN PIP_NO_CACHE_DIR=1 trident triton --install-only
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
CMD ["trident", "triton"]
