"""Raw-output parity: the exported graph's tensors against the PyTorch model's, on one input.

The decoded check compares what Ultralytics finds, and a model that finds nothing (untrained, or
shown an image without its classes) leaves it nothing to compare. This check needs no detections:
the ONNX and the model Ultralytics' exporter traces (fused, eval, same head mode) run on the same
letterboxed tensor, and every output is compared channel by channel, so a changed weight or a
scaled output fails the export even when both sides find nothing.

Graphs that select rows (NMS inside, `nms=True`; an NMS-free head's top-k, `nms=False`) are not
comparable element by element: near-tied scores come out in another order, and rows at the
cut-off swap in and out. For those the dense head tensor the selection reads (every anchor,
before any selection) is taken from inside the graph and compared element by element, and the
selected rows are compared as sets (see `_compare_rows`).

A semantic model's graph ends in an ArgMax over the class logits (a uint8 class map): its input,
the upsampled logits, is taken from inside the graph and compared element by element (channel =
class), and the class maps themselves must agree on `LABEL_AGREEMENT` of the pixels (a pixel whose
two best logits are within float noise may flip). A depth model's `(1, 1, H, W)` map is compared
element by element like any dense output.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from core.modelspec import ModelSpec
from exporter.errors import ExportError

RAW_RTOL = 1e-3
"""Allowed |onnx - torch| in a channel, as a fraction of that channel's largest |value|.

Channels, not whole tensors: a head output holds box coordinates (hundreds of pixels) next to
scores (an untrained model's are about 1e-4), and one scale for both would leave the scores
unchecked. Measured float32 ONNX Runtime vs PyTorch differences (YOLO11n/s/m, YOLO26n/m, every
task, 160 and 640 px, untrained and with spread-out scores) are at most 4.6e-4 of a channel's
range (boxes ~0.03 px of 640, scores ~1e-4 of 1), and a 1% change to any output is 10x over it.
"""
RAW_ATOL = 1e-6
"""Floor for channels whose values are tiny throughout: scores of 1e-5 and below (logits under
-11) differ by float noise in the logit, about 1e-7 absolute (the demo `shapes` models: 1.4e-7 in
a channel whose largest value is 4.7e-6), and ONNX Runtime's sigmoid saturates at |x| = 18. A
difference under 1e-6 cannot show in an answer rounded to 5 decimals; a changed weight moves such
scores by far more (the class-bias tamper of `tests/exporter/test_parity_gate.py`)."""
NOISE_FACTOR = 4.0
"""A model whose own float32 arithmetic is less precise than `RAW_RTOL` gets this multiple of it.

Deep models can amplify rounding: random-weight YOLO11x/YOLO26x differ from themselves run in
float64 by up to 1e-2 of a channel's range, and ONNX Runtime from PyTorch by as much (at most
1.2x the float64 difference, measured). Only the PyTorch model sets this, never the ONNX, and
only after the strict comparison failed (the float64 run takes seconds on large models).
"""
LABEL_AGREEMENT = 0.999
"""The fraction of a class map's pixels that must carry the same class in the ONNX and PyTorch."""
DENSE = "the head's output before NMS / top-k"
LOGITS = "the class logits before the ArgMax"
SCORE_COL, CLASS_COL = 4, 5  # selected rows are [x1, y1, x2, y2, score, class, extra...]


@dataclass(frozen=True)
class RawParity:
    outputs_checked: int  # tensors compared, the dense head tensor of a selecting graph included
    max_abs_diff: float  # largest |onnx - torch| over them (for selected rows: between matched rows)
    rtol: float  # the tolerance applied, as a fraction of each channel's range


@dataclass(frozen=True)
class _Reference:
    """The exporter's model, as traced, and the export arguments its NMS wrapper reads."""

    model: Any
    args: Any
    selects: bool  # the graph ends in a selection (NMS or top-k) of rows
    semantic: bool = False  # the graph ends in an ArgMax (a class map)


@dataclass(frozen=True)
class _Pair:
    name: str
    ours: NDArray[np.float32]
    ref: NDArray[np.float32]
    rows: bool  # selected rows, compared as sets; otherwise element by element
    labels: bool = False  # a class map: compared by the fraction of equal pixels


def reference_model(weights: Path, nms: bool | None, dynamic: bool, imgsz: tuple[int, int]) -> _Reference:
    """`YOLO(weights).model` set up as `ultralytics.engine.exporter.Exporter` sets it up for ONNX.

    The head mode must be the exported one: `nms=False` switches an NMS-free head (YOLO26,
    YOLOv10) to its one-to-one branch, anything else keeps the one-to-many branch.
    """
    from ultralytics import YOLO  # type: ignore[attr-defined, unused-ignore]
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.modules import Detect
    from ultralytics.utils import DEFAULT_CFG

    model: Any = copy.deepcopy(YOLO(str(weights)).model)
    head = model.model[-1]
    if hasattr(model, "end2end"):
        model.end2end = nms is False
    if nms and (getattr(model, "end2end", False) or not isinstance(head, Detect)):
        nms = None  # as the exporter does: no NMS around an NMS-free or non-YOLO head
    args = get_cfg(DEFAULT_CFG, {"format": "onnx", "nms": nms, "dynamic": dynamic, "imgsz": list(imgsz)})
    args.conf = 0.25 if args.conf is None else args.conf  # the exporter's default for a baked-in NMS
    for p in model.parameters():
        p.requires_grad = False
    model = model.eval().float().fuse(verbose=False)
    anchors = sum(int(imgsz[0] / s) * int(imgsz[1] / s) for s in model.stride.tolist())
    for m in model.modules():
        _trace_mode(m, args, anchors)
    semantic = type(head).__name__ == "SemanticSegment"
    return _Reference(model, args, bool(nms) or bool(getattr(model, "end2end", False)), semantic)


def _trace_mode(module: Any, args: Any, anchors: int) -> None:
    """Set on one module what the exporter sets before tracing (its head output is the graph's)."""
    from ultralytics.nn.modules import C2f, Detect

    kind = type(module)
    if issubclass(kind, Detect):  # Segment, Pose and OBB included
        module.dynamic, module.export, module.format, module.shape = args.dynamic, True, "onnx", None
        module.max_det, module.agnostic_nms = min(args.max_det, anchors), args.agnostic_nms
        module.xyxy = bool(args.nms)  # NMS reads corners, the raw head centre and size
    elif hasattr(module, "export"):  # Classify: softmax in the graph
        module.export, module.format = True, "onnx"
    if issubclass(kind, C2f):
        module.forward = module.forward_split  # the exporter's traced form of the same arithmetic


def _forward(model: Any, x: Any) -> tuple[list[Any], Any]:
    """The model's outputs, and the dense head tensor: the first output, or for an NMS-free head
    in end-to-end mode what its top-k (`Detect.postprocess`) selects from."""
    import torch

    head = model.model[-1]
    if type(head).__name__ == "SemanticSegment":
        with torch.no_grad():
            y = model(x)
            head.format = "trident-logits"  # not an ArgMax format: the head returns its logits
            try:
                logits = model(x)
            finally:
                head.format = "onnx"
        return [y], logits
    dense: list[Any] = []
    patched = bool(getattr(head, "end2end", False))
    if patched:
        select = head.postprocess

        def capture(preds: Any) -> Any:
            dense.append(preds.permute(0, 2, 1))
            return select(preds)

        head.postprocess = capture
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        if patched:
            del head.postprocess  # the instance attribute: the class's method is back
    outputs = [y] if isinstance(y, torch.Tensor) else list(y)
    return outputs, dense[0] if dense else outputs[0]


def torch_outputs(
    ref: _Reference, tensor: NDArray[np.float32]
) -> tuple[list[NDArray[np.float32]], NDArray[np.float32] | None]:
    """The traced model's outputs in ONNX order, and for a selecting graph its dense head tensor."""
    import torch
    from ultralytics.engine.exporter import NMSModel

    x = torch.from_numpy(tensor)
    outputs, dense = _forward(ref.model, x)
    if ref.args.nms:
        with torch.no_grad():
            y = NMSModel(ref.model, ref.args)(x)  # type: ignore[no-untyped-call, unused-ignore]
        outputs = [y] if isinstance(y, torch.Tensor) else list(y)
    return [o.numpy() for o in outputs], dense.numpy() if ref.selects or ref.semantic else None


def float32_error(ref: _Reference, tensor: NDArray[np.float32]) -> float:
    """How far the model's float32 outputs are from its float64 ones, as the smallest relative
    tolerance (in `_tolerance`'s terms) under which they would pass: the model's own precision."""
    import torch
    from ultralytics.nn.modules import Detect

    model64 = copy.deepcopy(ref.model).double()
    for m in model64.modules():
        if isinstance(m, Detect):
            m.shape = None  # its anchors were cached in float32
    x = torch.from_numpy(tensor)
    outputs, dense = _forward(ref.model, x)
    outputs64, dense64 = _forward(model64, x.double())
    pairs = [(dense, dense64), *zip(outputs[1:], outputs64[1:], strict=True)]
    return max(_needed_rtol(a.numpy(), b.numpy()) for a, b in pairs)


def _needed_rtol(ours: NDArray[Any], ref: NDArray[Any]) -> float:
    """The smallest rtol for which `ours` is within `_tolerance(ref, 1, rtol)` of `ref`."""
    if not ref.size:
        return 0.0
    others = tuple(i for i in range(ref.ndim) if i != 1)
    excess = np.abs(ours.astype(np.float64) - ref).max(axis=others) - RAW_ATOL
    scale = np.abs(ref.astype(np.float64)).max(axis=others)
    return float(np.max(np.where(excess > 0, excess / np.maximum(scale, np.finfo(np.float64).tiny), 0.0)))


def onnx_outputs(
    onnx_path: Path, tensor: NDArray[np.float32], dense_shape: tuple[int, ...] | None, op: str = "Transpose"
) -> tuple[list[tuple[str, NDArray[np.float32]]], tuple[str, NDArray[np.float32]] | None]:
    """The graph's outputs by name, and the first tensor of `dense_shape` an `op` node reads.

    Both selections start by transposing the dense head tensor to one row per anchor
    (`NMSModel.forward`, `Detect.forward`), so the inputs of Transpose nodes are exposed as extra
    outputs and the first whose shape is the head's is it (shapes are only known once run); a
    semantic head's logits are the input of its ArgMax.
    """
    proto = onnx.load(str(onnx_path))
    names = [o.name for o in proto.graph.output]
    candidates: list[str] = []
    if dense_shape is not None:
        consumed = {i for n in proto.graph.node if n.op_type == op for i in n.input}
        candidates = [t for n in proto.graph.node for t in n.output if t in consumed and t not in names]
        proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in candidates)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(names + candidates, {session.get_inputs()[0].name: tensor})
    arrays = [np.asarray(v) for v in values]
    dense = next(
        ((t, a) for t, a in zip(candidates, arrays[len(names) :], strict=True) if a.shape == dense_shape),
        None,
    )
    return list(zip(names, arrays[: len(names)], strict=True)), dense


def _tolerance(
    ref: NDArray[np.float32], axis: int, rtol: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each channel's largest |value| along `axis`, and the difference allowed there."""
    others = tuple(i for i in range(ref.ndim) if i != axis)
    scale = np.abs(ref.astype(np.float64)).max(axis=others) if ref.size else np.zeros(ref.shape[axis])
    return scale, rtol * scale + RAW_ATOL


def _rule(rtol: float) -> str:
    """The tolerance, in words, for error messages."""
    why = "" if rtol == RAW_RTOL else f", {NOISE_FACTOR:g}x this model's own float32 error"
    return f"{rtol:.3g} of the channel's largest |value|{why}, + {RAW_ATOL:g}"


def _check_shape(name: str, ours: NDArray[np.float32], ref: NDArray[np.float32]) -> None:
    if ours.shape != ref.shape:
        raise ExportError(
            f"parity check failed: raw output {name} has shape {ours.shape} in the ONNX, "
            f"{ref.shape} in the PyTorch model"
        )


def _compare_dense(name: str, ours: NDArray[np.float32], ref: NDArray[np.float32], rtol: float) -> float:
    """Element by element, channels along axis 1; return the largest difference."""
    _check_shape(name, ours, ref)
    if not ref.size:
        return 0.0
    diff = np.abs(ours.astype(np.float64) - ref)
    scale, tol = _tolerance(ref, 1, rtol)
    worst_per_channel = diff.max(axis=tuple(i for i in range(ref.ndim) if i != 1))
    c = int(np.argmax(worst_per_channel / tol))
    if not worst_per_channel[c] <= tol[c]:  # also catches NaN
        raise ExportError(
            f"parity check failed: raw output {name} differs from the PyTorch model by up to "
            f"{worst_per_channel[c]:.3g} in channel {c} (largest |value| {scale[c]:.3g}); "
            f"tolerance {tol[c]:.3g} ({_rule(rtol)})"
        )
    return float(diff.max())


def _compare_rows(
    name: str, ours: NDArray[np.float32], ref: NDArray[np.float32], nms_conf: float | None, rtol: float
) -> float:
    """Selected rows `(batch, k, 6 + extra)` as sets: order among near-tied scores is not kept.

    Every row of either side scoring clearly above the cut-off (the baked confidence threshold
    for NMS, the k-th score for a top-k) must have a row on the other side with the same class and
    every column within tolerance. Rows within tolerance of the cut-off may be missing from the
    other side; so may a box whose overlap with a better one is within float noise of NMS's IoU
    threshold (not allowed for here: rare, and the dense head tensor is compared exactly anyway).
    """
    _check_shape(name, ours, ref)
    _, tol = _tolerance(ref.reshape(-1, ref.shape[-1]), 1, rtol)
    worst = 0.0
    for a_rows, b_rows in zip(ours.astype(np.float64), ref.astype(np.float64), strict=True):
        lowest = min(a_rows[:, SCORE_COL].min(initial=np.inf), b_rows[:, SCORE_COL].min(initial=np.inf))
        cutoff = (nms_conf if nms_conf is not None else lowest) + tol[SCORE_COL]
        for side, rows, other in (("ONNX", a_rows, b_rows), ("PyTorch", b_rows, a_rows)):
            kept = rows[rows[:, SCORE_COL] > cutoff]
            worst = max(worst, _match_rows(name, side, kept, other, tol, rtol))
    return worst


def _match_rows(
    name: str,
    side: str,
    rows: NDArray[np.float64],
    other: NDArray[np.float64],
    tol: NDArray[np.float64],
    rtol: float,
) -> float:
    """Each of `rows` must have a counterpart in `other`; return the largest difference to it."""
    if not len(rows):
        return 0.0
    diff = np.abs(rows[:, None, :] - other[None, :, :])  # (rows, other, columns)
    fits = (diff <= tol).all(axis=2) & (rows[:, None, CLASS_COL] == other[None, :, CLASS_COL])
    largest = diff.max(axis=2, initial=0.0)
    missing = np.flatnonzero(~fits.any(axis=1))
    if missing.size:
        row = rows[missing[0]]
        raise ExportError(
            f"parity check failed: raw output {name}: the {side} row with score "
            f"{row[SCORE_COL]:.4g}, class {int(row[CLASS_COL])} has no counterpart (nearest row differs "
            f"by up to {largest[missing[0]].min(initial=np.inf):.3g}; tolerance per column: {_rule(rtol)})"
        )
    return float(np.where(fits, largest, np.inf).min(axis=1).max())


def _compare_labels(name: str, ours: NDArray[Any], ref: NDArray[Any]) -> float:
    """Class maps: the same class on `LABEL_AGREEMENT` of the pixels (the logits before them carry
    the numeric comparison, so this adds 0 to the largest difference)."""
    _check_shape(name, ours, ref)
    if not ref.size:
        return 0.0
    differ = float(np.count_nonzero(ours != ref)) / ref.size
    if differ > 1 - LABEL_AGREEMENT:
        raise ExportError(
            f"parity check failed: raw output {name} (a class map) differs from the PyTorch model's on "
            f"{differ:.3%} of the pixels (at most {1 - LABEL_AGREEMENT:.1%} allowed)"
        )
    return 0.0


def _compare_all(pairs: list[_Pair], nms_conf: float | None, rtol: float) -> RawParity:
    diffs = [
        _compare_labels(p.name, p.ours, p.ref)
        if p.labels
        else _compare_rows(p.name, p.ours, p.ref, nms_conf, rtol)
        if p.rows
        else _compare_dense(p.name, p.ours, p.ref, rtol)
        for p in pairs
    ]
    return RawParity(outputs_checked=len(diffs), max_abs_diff=max(diffs), rtol=rtol)


def _pairs(ref: _Reference, onnx_path: Path, tensor: NDArray[np.float32]) -> list[_Pair]:
    """What to compare: every graph output, and for a selecting graph the head tensor inside it."""
    expected, dense_ref = torch_outputs(ref, tensor)
    op = "ArgMax" if ref.semantic else "Transpose"
    produced, dense = onnx_outputs(onnx_path, tensor, None if dense_ref is None else dense_ref.shape, op)
    if len(produced) != len(expected):
        raise ExportError(
            f"parity check failed: the ONNX has {len(produced)} outputs, the PyTorch model {len(expected)}"
        )
    pairs = [
        _Pair(name, ours, theirs, rows=ref.selects and i == 0, labels=ref.semantic and i == 0)
        for i, ((name, ours), theirs) in enumerate(zip(produced, expected, strict=True))
    ]
    if dense_ref is not None:
        what = LOGITS if ref.semantic else DENSE
        if dense is None:
            raise ExportError(
                f"parity check failed: no tensor of shape {dense_ref.shape} ({what}) in the ONNX graph"
            )
        pairs.append(_Pair(f"{dense[0]} ({what})", dense[1], dense_ref, rows=False))
    return pairs


def check_raw_outputs(
    weights: Path, onnx_path: Path, spec: ModelSpec, tensor: NDArray[Any], nms: bool | None
) -> RawParity:
    """Compare every ONNX output with the PyTorch model's on `tensor` (Trident's own model input);
    raise `ExportError` naming the output, the difference and the tolerance."""
    x: NDArray[np.float32] = np.asarray(tensor, dtype=np.float32)
    plain = spec.task in ("classify", "semantic", "depth")  # no NMS or head mode to choose
    ref = reference_model(weights, None if plain else nms, spec.dynamic, spec.imgsz)
    pairs = _pairs(ref, onnx_path, x)
    nms_conf = float(ref.args.conf) if ref.args.nms else None
    try:
        return _compare_all(pairs, nms_conf, RAW_RTOL)
    except ExportError:
        rtol = NOISE_FACTOR * float32_error(ref, x)
        if rtol <= RAW_RTOL:
            raise
    return _compare_all(pairs, nms_conf, rtol)
