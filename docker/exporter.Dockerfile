# The exporter: Ultralytics (and torch) to turn .pt checkpoints into Triton model folders, as a
# one-shot tool (`trident export`) and as the worker that exports weights uploaded through the API
# (`trident worker`: each checkpoint opened only in a bubblewrap sandbox, docs/uploads.md).
# Build with --build-arg TENSORRT=1 on GPU hosts for `trident export --format engine`.
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TENSORRT=0
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 bubblewrap \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir ".[export]" \
    && if [ "$TENSORRT" = "1" ]; then pip install --no-cache-dir tensorrt; fi \
    && rm -rf /src
RUN useradd --system --uid 10001 --home-dir /work --create-home trident \
    && mkdir /data && chown 10001 /data  # the worker's volume, shared with the frontends
WORKDIR /work
USER 10001
# Configs written for the CPU profile point at the runtime inside the triton-cpu image.
ENV TRIDENT_MODEL_REPOSITORY=/models \
    TRIDENT_TRITON_RUNTIME_DIR=/opt/trident/triton-runtime \
    YOLO_CONFIG_DIR=/work/.ultralytics
HEALTHCHECK NONE
ENTRYPOINT ["trident"]
CMD ["export", "--help"]
