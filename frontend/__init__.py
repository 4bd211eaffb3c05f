"""The FastAPI frontend: the Ultralytics Platform REST API in front of Triton (never imports torch)."""
