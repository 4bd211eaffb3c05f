"""Triton Python-backend model: ONNX Runtime on the CPU, with real batching.

Copied next to `model.onnx` in every version folder by the exporter. It runs inside Triton's
Python stub (its own environment: numpy<2, onnxruntime), so it imports nothing from Trident.
Requests that Triton's dynamic batcher hands over together are stacked by input shape and run as
one ONNX Runtime call; a graph with a fixed batch size (a static export is batch 1) is run in
chunks of that size.

A request carries either the float32 model input (`images`, what Ultralytics' own client sends) or
the letterboxed image as BGR uint8 `(n, h, w, 3)` (`images_u8`, what Trident sends, 4x fewer
bytes); the latter is turned into the float32 RGB NCHW tensor here with the very operations the
frontend used to run, so the numbers are bit-identical.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

U8_INPUT = "images_u8"  # trident.modelspec.U8_INPUT (this file imports nothing from Trident)


def from_u8(image):
    """`(n, h, w, 3)` BGR uint8 -> `(n, 3, h, w)` RGB float32 in [0, 1]."""
    chw = image[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(chw, dtype=np.float32) / np.float32(255)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        threads = int(config.get("parameters", {}).get("ORT_INTRA_OP_THREADS", {}).get("string_value", "0"))
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            os.path.join(version_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def run(self, batch):
        """Outputs for `batch`, honouring a fixed graph batch size (zero-padded last chunk)."""
        if self.fixed_batch is None:
            return self.session.run(self.output_names, {self.input_name: batch})
        n, size = batch.shape[0], self.fixed_batch
        chunks = []
        for start in range(0, n, size):
            part = batch[start : start + size]
            if part.shape[0] < size:
                pad = np.zeros((size - part.shape[0], *part.shape[1:]), dtype=part.dtype)
                part = np.concatenate([part, pad])
            chunks.append(self.session.run(self.output_names, {self.input_name: part}))
        return [np.concatenate([c[k] for c in chunks])[:n] for k in range(len(self.output_names))]

    def model_input(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
        if tensor is not None:
            return tensor.as_numpy()
        tensor = pb_utils.get_input_tensor_by_name(request, U8_INPUT)
        if tensor is not None:
            return from_u8(tensor.as_numpy())
        raise ValueError(f"the request has neither {self.input_name!r} nor {U8_INPUT!r}")

    def execute(self, requests):
        inputs = [None] * len(requests)
        responses = [None] * len(requests)
        by_shape = {}
        for i, request in enumerate(requests):
            try:
                inputs[i] = self.model_input(request)
            except Exception as exc:
                error = pb_utils.TritonError(str(exc))
                responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                continue
            by_shape.setdefault(inputs[i].shape[1:], []).append(i)
        for indices in by_shape.values():
            batch = np.concatenate([inputs[i] for i in indices], axis=0)
            try:
                outputs = self.run(batch)
            except Exception as exc:  # one bad batch must not take the model down
                error = pb_utils.TritonError(f"onnxruntime failed: {exc}")
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                continue
            start = 0
            for i in indices:
                n = inputs[i].shape[0]
                tensors = [
                    pb_utils.Tensor(name, np.ascontiguousarray(out[start : start + n]))
                    for name, out in zip(self.output_names, outputs, strict=True)
                ]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += n
        return responses
