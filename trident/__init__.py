"""Trident: Ultralytics YOLO models served by Triton behind the Ultralytics Platform REST API.

This package is the top of the stack: the `trident` command and the processes `trident run` keeps up."""
