"""What the frontend needs to serve a model, carried in the Triton config's `trident` parameter.

The exporter writes it, the frontend reads it back from Triton: Triton's repository is the only
registry, so there is nothing else to keep in sync.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Task = Literal["detect", "segment", "pose", "classify", "obb", "semantic", "depth"]
MAP_TASKS = ("semantic", "depth")  # one dense map per image (no rows): class ids, or metres
SPEC_PARAMETER = "trident"
# The optional second input of the local (Python-backend) models: the letterboxed image itself,
# `(h, w, 3)` BGR uint8, normalised inside Triton. A quarter of the float32 tensor's bytes, and no
# transpose or division in the frontend. The float32 `images` input stays first, as Ultralytics'
# own Triton client casts its input to the first input's dtype.
U8_INPUT = "images_u8"
# The optional compact head of the local models with a raw head (detect, segment, pose, obb): the
# request sends its confidence threshold (`CONF_INPUT`, FP32 `(1,)`) and asks for `CANDIDATES_OUTPUT`,
# `output0` with only the anchors (columns) whose best class score can pass it, in their original
# order: the frontend's exact filter then finds the same candidates in the same order, so NMS is
# bit-identical, and a few hundred columns cross gRPC instead of 8,400. The name sorts after
# `output0`/`output1`: Ultralytics' client sorts the outputs by name and reads them by position
# (it asks for this one too, without a threshold, and gets an empty tensor).
CONF_INPUT = "conf_threshold"
CANDIDATES_OUTPUT = "trident_candidates"
RAW_HEAD_TASKS = ("detect", "segment", "pose", "obb")


@dataclass(frozen=True)
class ModelSpec:
    task: Task
    names: dict[int, str]
    imgsz: tuple[int, int]  # (h, w) the model was exported at
    stride: int
    dynamic: bool  # dynamic H/W: rectangular letterbox at the requested imgsz
    end2end: bool  # rows are final (NMS-free head or NMS inside the graph)
    input_dtype: str = "FP32"
    kpt_shape: tuple[int, int] | None = None
    owner: str = ""
    visibility: Literal["private", "public"] = "private"
    provenance: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["names"] = {str(k): v for k, v in self.names.items()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = json.loads(text)
        data["names"] = {int(k): str(v) for k, v in data["names"].items()}
        data["imgsz"] = tuple(data["imgsz"])
        if data.get("kpt_shape") is not None:
            data["kpt_shape"] = tuple(data["kpt_shape"])
        return cls(**data)
