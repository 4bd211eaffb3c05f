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

A model with a raw one-to-many head (detect, segment, pose, obb) also offers `trident_candidates`:
`output0` with only the anchors whose best class score exceeds the request's `conf_threshold`
(a hair below it, so that the frontend's own exact filter decides), in their original order. NMS
only ever looks at those, so the frontend gets the same boxes from a few hundred columns instead of
8,400 (2.8 MB of float32 for yolo11n at 640). Only the outputs a request asks for are sent.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

# core.modelspec's names (this file imports nothing from Trident)
U8_INPUT = "images_u8"
CONF_INPUT = "conf_threshold"
CANDIDATES_OUTPUT = "trident_candidates"


def from_u8(image, out=None):
    """`(n, h, w, 3)` BGR uint8 -> `(n, 3, h, w)` RGB float32 in [0, 1], one channel at a time
    straight into `out` (new if None): bit-identical to casting the transposed image and dividing
    by 255 (both divide in float32), in one strided pass instead of three."""
    n, h, w, _ = image.shape
    if out is None:
        out = np.empty((n, 3, h, w), dtype=np.float32)
    for c in range(3):
        np.divide(image[..., 2 - c], np.float32(255), out=out[:, c], dtype=np.float32)
    return out


class Scratch:
    """One reused buffer, grown to the largest request seen. A fresh 39 MB array (eight 640 px
    frames in float32) is a new mapping that faults in page by page: 60 ms of a 75 ms conversion
    on this CPU. Valid until the next `view`: Triton copies a response's tensors out before it
    calls `execute` again."""

    def __init__(self):
        self.buffer = np.empty(0, dtype=np.uint8)

    def view(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self.buffer.size < nbytes:
            self.buffer = np.empty(nbytes, dtype=np.uint8)
        return self.buffer[:nbytes].view(dtype).reshape(shape)


def candidates(head, nc, conf):
    """`head (n, 4 + nc + extra, anchors)` -> the anchors whose best class score is above the
    float32 just below `conf` (a superset of what `> conf` keeps in float32 or float64), in order;
    the union over the batch so the result stays one array."""
    if conf is None:
        return np.zeros((*head.shape[:2], 0), dtype=head.dtype)
    floor = np.nextafter(np.float32(conf), np.float32(-np.inf))
    keep = np.flatnonzero((head[:, 4 : 4 + nc].max(axis=1) > floor).any(axis=0))
    return head.take(keep, axis=2)  # a boolean index on the last axis is about 9x slower


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        options.intra_op_num_threads = int(params.get("ORT_INTRA_OP_THREADS") or 0)
        if params.get("ORT_ALLOW_SPINNING") in ("0", "1"):  # idle intra-op threads spin by default
            options.add_session_config_entry("session.intra_op.allow_spinning", params["ORT_ALLOW_SPINNING"])
        self.session = ort.InferenceSession(
            os.path.join(version_dir, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        spec = json.loads(params.get("trident") or "{}")
        self.nc = len(spec.get("names", {}))
        self.inputs = Scratch()  # the batch's model input
        self.outputs = [Scratch() for _ in self.output_names]  # a fixed-batch graph's chunks, joined

    def run(self, batch):
        """Outputs for `batch`, honouring a fixed graph batch size (zero-padded last chunk)."""
        if self.fixed_batch is None:
            return self.session.run(self.output_names, {self.input_name: batch})
        n, size = batch.shape[0], self.fixed_batch
        joined = None
        for start in range(0, n, size):
            part = batch[start : start + size]
            if part.shape[0] < size:
                pad = np.zeros((size - part.shape[0], *part.shape[1:]), dtype=part.dtype)
                part = np.concatenate([part, pad])
            chunk = self.session.run(self.output_names, {self.input_name: part})
            if joined is None:
                joined = [
                    s.view((n, *c.shape[1:]), c.dtype) for s, c in zip(self.outputs, chunk, strict=True)
                ]
            for out, c in zip(joined, chunk, strict=True):
                out[start : start + size] = c[: n - start]
        return joined

    def raw_input(self, request):
        """The request's input as sent, and the model-input shape of one image it stands for."""
        tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
        if tensor is not None:
            array = tensor.as_numpy()
            return array, array.shape[1:]
        tensor = pb_utils.get_input_tensor_by_name(request, U8_INPUT)
        if tensor is not None:
            array = tensor.as_numpy()
            return array, (3, *array.shape[1:3])
        raise ValueError(f"the request has neither {self.input_name!r} nor {U8_INPUT!r}")

    def batch_input(self, arrays, shape):
        """The requests' inputs as one float32 model input: a lone float32 one as it came,
        anything else converted or copied into the reused buffer."""
        if len(arrays) == 1 and arrays[0].dtype == np.float32:
            return arrays[0]
        batch = self.inputs.view((sum(a.shape[0] for a in arrays), *shape), np.float32)
        start = 0
        for array in arrays:
            part = batch[start : start + array.shape[0]]
            if array.dtype == np.uint8:
                from_u8(array, out=part)
            else:
                part[...] = array
            start += array.shape[0]
        return batch

    def output_tensors(self, request, outputs):
        """The tensors `request` asked for, from its slice of the batch's outputs."""
        wanted = set(request.requested_output_names())
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(out))
            for name, out in zip(self.output_names, outputs, strict=True)
            if name in wanted
        ]
        if CANDIDATES_OUTPUT in wanted:
            conf = pb_utils.get_input_tensor_by_name(request, CONF_INPUT)
            threshold = None if conf is None else float(conf.as_numpy().reshape(-1)[0])
            tensors.append(pb_utils.Tensor(CANDIDATES_OUTPUT, candidates(outputs[0], self.nc, threshold)))
        return tensors

    def execute(self, requests):
        inputs = [None] * len(requests)
        responses = [None] * len(requests)
        by_shape = {}
        for i, request in enumerate(requests):
            try:
                inputs[i], shape = self.raw_input(request)
            except Exception as exc:
                error = pb_utils.TritonError(str(exc))
                responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                continue
            by_shape.setdefault(shape, []).append(i)
        for shape, indices in by_shape.items():
            try:
                outputs = self.run(self.batch_input([inputs[i] for i in indices], shape))
            except Exception as exc:  # one bad batch must not take the model down
                error = pb_utils.TritonError(f"onnxruntime failed: {exc}")
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                continue
            start = 0
            for i in indices:
                n = inputs[i].shape[0]
                try:
                    tensors = self.output_tensors(requests[i], [out[start : start + n] for out in outputs])
                    responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                except Exception as exc:
                    error = pb_utils.TritonError(f"the outputs could not be built: {exc}")
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                start += n
        return responses
