"""Parse and validate the multipart predict request against the contract (`pipeline.contract`).

The image comes as `file` (an upload) or `source` (a URL or base64 text, fetched by
`frontend.serving.source`); the options are validated by `PredictOptions` itself, so bounds and defaults
live in one place and the error names the field and its range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from core.settings import MB
from frontend.errors import BodyTooLarge, InvalidImage, InvalidRequest, PayloadTooLarge
from frontend.serving.video_input import sniff_video
from pipeline.contract import (
    MAX_FORM_FIELDS,
    MAX_SOURCE_CHARS,
    ApiFormat,
    PredictOptions,
    bounds,
    with_defaults,
)

# multipart for uploads; a URL-encoded form carries `source` (the SDK sends one when there is no file)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


SNIFF_BYTES = 512  # enough for every container `sniff_video` knows


@dataclass(frozen=True)
class PredictForm:
    data: bytes | None  # the uploaded file, or None when the image is named by `source`
    source: str | None
    options: PredictOptions
    # a video `file`, still open in its spool (an unnamed temporary file past 1 MB, gone when
    # closed, whatever ends the request); the caller must `close()` it
    video: UploadFile | None = None


def _field_rule(name: str) -> str:
    """What a field accepts, in words, from its declaration."""
    field = PredictOptions.model_fields[name]
    if field.annotation is bool:
        return f"{name} must be true or false"
    if name == "track_session":
        return f"{name} must be 1 to 64 characters of letters, digits, '.', '_' or '-'"
    if get_origin(field.annotation) is Literal:
        *first, last = (str(v) for v in get_args(field.annotation))
        return f"{name} must be {', '.join(first)} or {last}"
    low, high = bounds(name)
    kind = "an integer" if field.annotation is int else "a number"
    return f"{name} must be {kind} between {low:g} and {high:g}"


def parse_options(fields: dict[str, Any], contract: ApiFormat = "seed") -> PredictOptions:
    """`PredictOptions` from form strings; empty strings take `contract`'s default."""
    given = {k: v for k, v in fields.items() if k in PredictOptions.model_fields and v not in (None, "")}
    try:
        return PredictOptions.model_validate(with_defaults(given, contract))
    except ValidationError as exc:
        name = str(exc.errors()[0]["loc"][0])
        raise InvalidRequest(f"{_field_rule(name)}, got {given[name]!r}") from None


async def read_predict_form(
    request: Request,
    max_upload_bytes: int,
    max_video_bytes: int | None = None,
    contract: ApiFormat = "seed",
) -> PredictForm:
    """The image (bytes or `source`) or video (spooled) and validated options, with `contract`'s
    defaults (the body's size is capped by `BodyLimit`). The upload is a video when its bytes say
    so, whatever its name (an HEIC or AVIF photo is an image)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(FORM_TYPES):
        raise InvalidRequest(
            "send the image as multipart/form-data with a 'file' field (or any form with 'source')"
        )
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except BodyTooLarge:
        raise
    except Exception:
        raise InvalidRequest("the multipart body could not be parsed") from None
    handed_over = False
    try:
        upload, source = form.get("file"), form.get("source")
        if isinstance(source, UploadFile):
            raise InvalidRequest("source must be text: an http(s) URL or a base64 image")
        if upload is not None and source:
            raise InvalidRequest("send either 'file' or 'source', not both")
        options = parse_options({name: form.get(name) for name in PredictOptions.model_fields}, contract)
        if source:
            if len(source) > MAX_SOURCE_CHARS:
                raise InvalidRequest(f"source is longer than {MAX_SOURCE_CHARS} characters")
            return PredictForm(None, source, options)
        if not isinstance(upload, UploadFile):
            raise InvalidImage("no image: send it in the 'file' field (or a URL or base64 in 'source')")
        if max_video_bytes is not None and sniff_video(await upload.read(SNIFF_BYTES)):
            if (upload.size or 0) > max_video_bytes:
                raise PayloadTooLarge(f"the video is larger than {max_video_bytes // MB} MB")
            await upload.seek(0)
            handed_over = True
            return PredictForm(None, None, options, video=upload)
        await upload.seek(0)
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise PayloadTooLarge(f"the image is larger than {max_upload_bytes // MB} MB")
    finally:
        if not handed_over:  # the form's only file is a video handed to the caller, who closes it
            await form.close()
    return PredictForm(data, None, options)
