"""YOLO `.pt` -> ONNX -> a versioned Triton model folder, published atomically and parity-checked."""
