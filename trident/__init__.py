"""Trident: Ultralytics YOLO models served by Triton behind the Ultralytics Platform REST API."""

__version__ = "0.1.0"
