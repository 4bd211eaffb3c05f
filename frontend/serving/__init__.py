"""The serving engine: Triton client, shared memory, the model catalog and loader, intake (form,
source, image, video) and the inference calls."""
