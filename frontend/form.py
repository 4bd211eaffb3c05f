"""Parse and validate the multipart predict request: `file`, `conf`, `iou`, `imgsz`."""

from __future__ import annotations

import math

from starlette.datastructures import UploadFile
from starlette.requests import Request

from frontend.body_limit import BodyTooLarge
from frontend.errors import InvalidImage, InvalidRequest, PayloadTooLarge
from frontend.inference import Params


def _number(raw: object, name: str, low: float, high: float, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(str(raw))
    except ValueError:
        raise InvalidRequest(f"{name} must be a number between {low:g} and {high:g}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low:g} and {high:g}, got {raw}")
    return value


def _integer(raw: object, name: str, low: int, high: int, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer between {low} and {high}") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


async def read_predict_form(request: Request, max_upload_bytes: int) -> tuple[bytes, Params]:
    """The uploaded bytes and validated parameters (the body's size is capped by `BodyLimit`)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest("send the image as multipart/form-data with a 'file' field")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except BodyTooLarge:
        raise
    except Exception:
        raise InvalidRequest("the multipart body could not be parsed") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidImage("no image: send it in the 'file' field")
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise PayloadTooLarge(f"the image is larger than {max_upload_bytes // (1024 * 1024)} MB")
        params = Params(
            conf=_number(form.get("conf"), "conf", 0.0, 1.0, Params.conf),
            iou=_number(form.get("iou"), "iou", 0.0, 1.0, Params.iou),
            imgsz=_integer(form.get("imgsz"), "imgsz", 32, 1280, Params.imgsz),
        )
    finally:
        await form.close()
    return data, params
