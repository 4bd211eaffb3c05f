"""The predict request's contract, declared once: fields, bounds, defaults, and the two formats.

Form parsing (`frontend.serving.form`), the OpenAPI document at `/docs` and the CLI derive from these
declarations. Where the reference page and the Platform's OpenAPI contract give different bounds
(`conf` 0-1 vs 0.01-1, `iou` 0-1 vs 0-0.95) the wider range is accepted in both formats. The
defaults are the same in both but for `iou` (`CONTRACT_DEFAULTS`): 0.45 in the reference page's
contract, 0.70 in the Platform's (its current docs and the SDK's CLI: Ultralytics' own default).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from core.settings import MB, Settings
from postprocess.trackers import TrackerConfig, TrackerName

ApiFormat = Literal["seed", "platform"]
MAX_SOURCE_CHARS = 4096
IMAGE_FORMATS = "JPEG, PNG, WebP, AVIF, HEIC, JP2, TIFF, BMP, DNG, MPO or GIF (first frame)"
# the containers `frontend.serving.video_input` recognises by their bytes
VIDEO_FORMATS = "MP4, MOV, M4V, WebM, MKV, AVI, ASF/WMV, MPEG or TS"


def _int_from_text(value: Any) -> Any:
    """A form field arrives as text: `"12"` is the integer 12 (anything else is left to fail)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _true(value: Any) -> bool:
    """Whether a field's value reads as true, as pydantic reads a bool (`"true"`, `"1"`, `"on"`...)."""
    try:
        return _BOOL.validate_python(value)
    except ValidationError:  # the field's own validation says why
        return False


_BOOL = TypeAdapter(bool)
DepthBits = Annotated[Literal[8, 12, 16], BeforeValidator(_int_from_text)]
TRACK_CONF = 0.1  # `model.track()`'s `conf` when none is given: the trackers' second stage needs weak boxes
TRACKABLE = ("detect", "segment", "pose", "obb")
TRACK_SESSION_PATTERN = r"^[A-Za-z0-9._-]+$"  # the tasks `model.track()` accepts
_TRACKER = TrackerConfig()
# the defaults that differ by contract, applied when the request does not give the field
CONTRACT_DEFAULTS: dict[ApiFormat, dict[str, float]] = {
    "seed": {"iou": 0.45},
    "platform": {"iou": 0.70},
}  # the defaults of Ultralytics' `botsort.yaml` and `bytetrack.yaml` (equal)


class PredictOptions(BaseModel):
    """The form fields besides the image; both formats accept all of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conf: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="minimum confidence (with track: 0.1 unless given, as model.track())",
    )
    iou: float = Field(
        CONTRACT_DEFAULTS["seed"]["iou"],
        ge=0.0,
        le=1.0,
        description=(
            f"NMS IoU threshold; when none is given {CONTRACT_DEFAULTS['platform']['iou']:.2f} in the "
            f"Platform contract (Ultralytics' default), {CONTRACT_DEFAULTS['seed']['iou']:.2f} in the "
            "reference page's (`seed`)"
        ),
    )
    imgsz: int = Field(
        640, ge=32, le=1280, description="inference size (dynamic models; static ones use their export size)"
    )
    normalize: bool = Field(False, description="coordinates divided by the image's width and height")
    decimals: int = Field(
        5,
        ge=0,
        le=10,
        description=(
            "decimals of every number, rounded as Python's round (outlines and keypoints as NumPy's, "
            "like Results.summary())"
        ),
    )
    bits: DepthBits = Field(
        8,
        description=(
            "depth models: precision of the depth PNG, 8 (uint8) or 12 or 16 (uint16); a pixel p is "
            "p * max / (2**bits - 1) metres, 0 no depth. Ignored by other tasks"
        ),
    )
    vid_stride: int = Field(
        1,
        ge=1,
        le=1000,
        description="videos: predict every Nth frame (as Ultralytics' vid_stride); images ignore it",
    )
    track: bool = Field(
        False,
        description=(
            "videos of detect, segment, pose and obb models: give each detection the `track_id` "
            "`model.track()` gives it; `conf` defaults to 0.1 then, as there"
        ),
    )
    tracker: TrackerName = Field("botsort", description="with track: botsort (without ReID) or bytetrack")
    track_high_thresh: float = Field(
        _TRACKER.track_high_thresh, ge=0.0, le=1.0, description="with track: detections matched first"
    )
    track_low_thresh: float = Field(
        _TRACKER.track_low_thresh, ge=0.0, le=1.0, description="with track: weaker ones matched second"
    )
    new_track_thresh: float = Field(
        _TRACKER.new_track_thresh, ge=0.0, le=1.0, description="with track: an unmatched one starts a track"
    )
    track_buffer: int = Field(
        _TRACKER.track_buffer,
        ge=0,
        le=10000,
        description="with track: processed frames a lost track waits for its object before it ends",
    )
    match_thresh: float = Field(
        _TRACKER.match_thresh, ge=0.0, le=1.0, description="with track: the largest cost (1 - IoU) of a match"
    )
    fuse_score: bool = Field(
        _TRACKER.fuse_score, description="with track: weigh IoU by the detection's score"
    )
    track_session: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=TRACK_SESSION_PATTERN,
        description=(
            "single images of detect, segment, pose and obb models: the server keeps the tracker "
            "between requests naming this id (yours alone), so frames sent one at a time get the ids "
            "a video of them would; implies track. 1-64 characters of letters, digits, '.', '_', '-'"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _track_conf(cls, data: Any) -> Any:
        """`track_session` implies `track`; `track` without `conf` predicts at 0.1, as `model.track()`."""
        if isinstance(data, dict) and data.get("track_session") not in (None, ""):
            data = {**data, "track": True}
        if isinstance(data, dict) and "conf" not in data and _true(data.get("track", False)):
            return {**data, "conf": TRACK_CONF}
        return data

    def tracker_config(self) -> TrackerConfig:
        """The tracker's settings from this request's options (each under the tracker's own name)."""
        given = {
            f.name: getattr(self, f.name) for f in fields(TrackerConfig) if f.name in type(self).model_fields
        }
        return TrackerConfig(**given)

    def tracking_binding(self) -> str:
        """The options a track session is bound to besides the model and tracker: every one that
        changes which boxes the tracker sees or how it matches them, as `name=value` pairs."""
        names = (
            "conf",
            "iou",
            "imgsz",
            *(f.name for f in fields(TrackerConfig) if f.name in type(self).model_fields),
        )
        return ", ".join(f"{name}={getattr(self, name)}" for name in names)


def bounds(name: str) -> tuple[float, float]:
    """`(minimum, maximum)` of a numeric field, read from its declaration."""
    low = high = None
    for item in PredictOptions.model_fields[name].metadata:
        low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
        high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
    assert low is not None and high is not None, name
    return low, high


IMGSZ_BOUNDS = tuple(int(v) for v in bounds("imgsz"))
FORM_FIELDS = ("file", "source", *PredictOptions.model_fields)  # what a predict form's fields can mean
# the form parser's cap: every field above, and room for ones a client adds that nothing reads
MAX_FORM_FIELDS = len(FORM_FIELDS) + 7


def _default_mb(setting: str) -> int:
    """A size limit's default, in MB, from the setting that holds it."""
    default: int = Settings.model_fields[setting].default
    return default // MB


def with_defaults(given: dict[str, Any], contract: ApiFormat) -> dict[str, Any]:
    """A request's fields with `contract`'s own defaults for the fields it does not give."""
    return {**CONTRACT_DEFAULTS[contract], **given}


def form_schema(upload: bool = True, contract: ApiFormat = "seed") -> dict[str, object]:
    """The form as OpenAPI describes it: the image (`file`, multipart only, or `source`) plus the
    options, with `contract`'s defaults."""
    options = PredictOptions.model_json_schema()["properties"]
    for name, default in CONTRACT_DEFAULTS[contract].items():
        options[name]["default"] = default
    file = {
        "type": "string",
        "format": "binary",
        "description": (
            f"the image: {IMAGE_FORMATS}, at most {_default_mb('max_upload_bytes')} MB by default; or a "
            f"video ({VIDEO_FORMATS}), at most {_default_mb('max_video_bytes')} MB by default, "
            "recognised by its bytes"
        ),
    }
    return {
        "type": "object",
        "properties": {
            **({"file": file} if upload else {}),
            "source": {
                "type": "string",
                "maxLength": MAX_SOURCE_CHARS,
                "description": "instead of `file`: an http(s) URL or a base64 image (optionally a data: URL)",
            },
            **{name: {k: v for k, v in field.items() if k != "title"} for name, field in options.items()},
        },
    }
