"""Response shapes of both contracts, for the OpenAPI document at /docs.

Answers are built by the renderings in `pipeline/` (plain dicts, serialised once); these models
describe them. The Platform's mirror the SDK's TypedDicts and forbid additional properties, as
its contract does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.contract import form_schema

Strict = ConfigDict(extra="forbid")
TRACK_ID = Field(
    None,
    description=(
        "with track, on a video frame whose objects are tracked: the id the tracker gave this object, "
        "the same in every frame it is seen in; absent otherwise"
    ),
)
TRACKS = "with track: the distinct track ids shown, by class (an id whose class changed counts in each)"


# --- the seed format (the reference page's) ---------------------------------------------------
class Box(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float
    x3: float | None = Field(None, description="obb: third corner")
    y3: float | None = None
    x4: float | None = Field(None, description="obb: fourth corner")
    y4: float | None = None


class Keypoint(BaseModel):
    x: float
    y: float
    conf: float | None = Field(None, description="the raw visibility, when the model has one")


class RotatedBox(BaseModel):
    cx: float
    cy: float
    w: float
    h: float
    angle: float = Field(description="radians, as the model gives it")


class Prediction(BaseModel):
    class_: str = Field(alias="class", description="class name")
    class_id: int
    confidence: float | None = Field(None, description="every task but semantic")
    pixel_ratio: float | None = Field(
        None,
        description="semantic: the share of the image's pixels of this class (one row per class present)",
    )
    box: Box | None = Field(None, description="every task but classify (obb: four corners)")
    track_id: int | None = TRACK_ID
    segments: list[list[float]] | None = Field(None, description="segment: the outline, [[x, y], ...]")
    keypoints: list[Keypoint] | None = Field(None, description="pose: in the model's kpt_shape order")
    obb: RotatedBox | None = Field(None, description="obb: centre, size and angle")


class TrackCount(BaseModel):
    model_config = Strict
    class_: str = Field(alias="class", description="class name")
    class_id: int
    count: int = Field(description="distinct track ids shown with this class")


class SemanticMask(BaseModel):
    """A class map at the original image's size (as Ultralytics' `Results.semantic_mask`)."""

    model_config = Strict
    shape: list[int] = Field(description="[height, width], the image's")
    encoding: Literal["png"]
    data: str = Field(description="base64 8-bit grayscale PNG; a pixel is its class id")


class DepthMap(BaseModel):
    """A depth map at the original image's size (as Ultralytics' `Results.depth`), in metres."""

    model_config = Strict
    shape: list[int] = Field(description="[height, width], the image's")
    encoding: Literal["png"]
    data: str = Field(
        description=(
            "base64 grayscale PNG: uint8 for 8 bits, uint16 for 12 and 16 (12-bit values up to 4095); "
            "a pixel p is p * max / (2**bits - 1) metres, 0 no depth"
        )
    )
    min: float = Field(description="the smallest depth, metres")
    max: float = Field(description="the largest depth, metres: the scale of the pixels")
    bits: Literal[8, 12, 16]


class ImageSize(BaseModel):
    width: int
    height: int


class Speed(BaseModel):
    """`pipeline.result.Speed`, in both contracts (the Platform's forbids other keys)."""

    model_config = Strict
    preprocess: float = Field(description="ms: decode and letterbox")
    inference: float = Field(description="ms: the Triton call")
    postprocess: float = Field(description="ms: NMS, masks, scaling and rendering")


class PredictResponse(BaseModel):
    """`?format=seed`: the reference page's answer."""

    success: Literal[True] = True
    predictions: list[Prediction] = Field(description="semantic: one row per class present; depth: none")
    semantic_mask: SemanticMask | None = Field(None, description="semantic models only")
    depth: DepthMap | None = Field(None, description="depth models only")
    image: ImageSize
    speed: Speed


class VideoFrame(BaseModel):
    """One processed frame of a video: what `PredictResponse` holds for an image, and its index."""

    frame: int = Field(description="the frame's index in the video (0-based; every vid_stride-th)")
    predictions: list[Prediction]
    semantic_mask: SemanticMask | None = Field(None, description="semantic models only")
    depth: DepthMap | None = Field(None, description="depth models only")
    speed: Speed = Field(description="ms per frame: its batch's decode and inference shared out")


class VideoInfo(BaseModel):
    width: int
    height: int
    fps: float
    frames: int = Field(description="the container's frame count (else the frames read)")


class VideoResponse(BaseModel):
    """`?format=seed` for a video: one entry per processed frame, in order."""

    success: Literal[True] = True
    frames: list[VideoFrame]
    video: VideoInfo
    tracks: list[TrackCount] | None = Field(None, description=TRACKS)


class VideoSummary(BaseModel):
    """`?format=seed`, streamed: the last NDJSON line, after one `VideoFrame` line per frame."""

    success: Literal[True] = True
    video: VideoInfo
    processed: int = Field(description="frames processed (lines before this one)")
    tracks: list[TrackCount] | None = Field(None, description=TRACKS)


class ErrorBody(BaseModel):
    code: str
    message: str = Field(description="the Platform's message, e.g. 'Invalid image'")
    detail: str


class ErrorResponse(BaseModel):
    """`?format=seed` errors."""

    success: Literal[False] = False
    error: ErrorBody


# --- the Platform format (OpenAPI 0.1.9, SDK `ultralytics-platform`) ---------------------------
class PlatformBox(Box):
    model_config = Strict


class PlatformSegments(BaseModel):
    model_config = Strict
    x: list[float]
    y: list[float]


class PlatformKeypoints(BaseModel):
    model_config = Strict
    x: list[float]
    y: list[float]
    visible: list[float] | None = Field(None, description="when the model has a visibility channel")


class PlatformResult(BaseModel):
    model_config = Strict
    name: str
    class_: int = Field(alias="class", description="class id")
    confidence: float | None = Field(None, description="every task but semantic and depth")
    pixel_ratio: float | None = Field(None, description="semantic: the share of the image's pixels")
    box: PlatformBox | None = Field(None, description="every task but classify")
    track_id: int | None = TRACK_ID
    segments: PlatformSegments | None = Field(None, description="segment")
    keypoints: PlatformKeypoints | None = Field(None, description="pose")


class PlatformImage(BaseModel):
    model_config = Strict
    shape: list[int] = Field(description="[height, width] of the image")
    speed: Speed
    results: list[PlatformResult] = Field(description="semantic: one row per class present; depth: none")
    semantic_mask: SemanticMask | None = Field(None, description="semantic models only")
    depth: DepthMap | None = Field(None, description="depth models only")


class PlatformTrackCount(BaseModel):
    model_config = Strict
    name: str
    class_: int = Field(alias="class", description="class id")
    count: int = Field(description="distinct track ids shown with this class")


class PlatformMetadata(BaseModel):
    model_config = Strict
    imageCount: int
    functionTimeAlive: float = Field(description="s this worker has been up")
    functionTimeCall: float = Field(description="s this request took")
    model: str = Field(description="owner/project/model")
    task: Literal["detect", "segment", "semantic", "depth", "classify", "pose", "obb"]
    version: dict[str, str]
    classNames: list[str]
    tracks: list[PlatformTrackCount] | None = Field(None, description=TRACKS)


class PlatformPredictResponse(BaseModel):
    """`?format=platform`: the Platform's answer."""

    model_config = Strict
    images: list[PlatformImage]
    metadata: PlatformMetadata


class PlatformErrorResponse(BaseModel):
    """`?format=platform` errors, and every Platform-only route's."""

    model_config = Strict
    error: str


PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": form_schema()},
            "application/x-www-form-urlencoded": {"schema": form_schema(upload=False)},
        },
    }
}


def error_docs(*statuses: int, shared: bool = False) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents: in both contracts' shapes on a `shared` route (see
    `frontend.formats`), else in the Platform's."""
    model: Any = ErrorResponse | PlatformErrorResponse if shared else PlatformErrorResponse
    return {status: {"model": model} for status in statuses}


ERRORS = error_docs(400, 401, 403, 404, 409, 410, 413, 429, 500, 503, 504, shared=True)
PLATFORM_ERRORS = error_docs(401, 403, 404, 429, 503)
NDJSON_LINES = (
    "A video with `Accept: application/x-ndjson`: one JSON line per processed frame as soon as its "
    "batch is done (seed: a `VideoFrame`; platform: a `PlatformImage`), then one summary line "
    '(seed: a `VideoSummary`; platform: `{"metadata": PlatformMetadata}`), or a last error line '
    "(an error body of the chosen format) if the video fails part-way. Headers `X-Video-Frames` "
    "and `X-Video-Fps` say, before the first line, how many frames the container holds. With "
    "`track`, rows of tracked frames carry `track_id` and the summary line the `tracks` per class."
)
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": PredictResponse | VideoResponse | PlatformPredictResponse,
        "description": "seed or platform, per `format`; a video's seed answer is a `VideoResponse`, its "
        "platform answer has one `images` entry per processed frame",
        "content": {"application/x-ndjson": {"schema": {"type": "string", "description": NDJSON_LINES}}},
    },
    **ERRORS,
}
