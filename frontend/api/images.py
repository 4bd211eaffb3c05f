"""What the Test tab needs besides predict: a model's own example images, and a preview of an upload.

- `GET /api/models/{owner}/{project}/{model}/examples` lists the example images stored with the
  model's served version (`trident export --examples DIR`, `exporter.examples`), and
  `.../examples/{name}` serves one. They are private like the model: a caller who may not see it
  gets the same 404 as for a missing model. A model without examples lists none (the page then
  shows Ultralytics' `bus.jpg` and `zidane.jpg`, `GET /examples`).
- `POST /api/preview` answers a JPEG of an uploaded image decoded exactly as predict decodes it
  (`frontend.serving.imaging.decode_image`: sniffed by its bytes, the same size and pixel limits,
  the same isolated decoders, EXIF orientation applied where predict applies it), so a browser that
  cannot show an HEIC, TIFF, JP2 or DNG draws the boxes on the very pixels the model saw. It takes
  the predict scope and spends one request of the caller's plan, like predict.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from core.settings import MB
from frontend.deps import CatalogDep, PredictCallerDep, QuotaDep, ServicesDep, SettingsDep
from frontend.errors import (
    BodyTooLarge,
    InvalidImage,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServingError,
)
from frontend.formats import json_response
from frontend.guards.auth import visible_model
from frontend.serving.imaging import decode_image
from frontend.serving.inference import run_cpu

EXAMPLES_DIR = "examples"  # in the model's version folder, as `exporter.examples` writes it
EXAMPLE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,80}\.(jpg|png|webp)$")
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
PREVIEW_QUALITY = 90

router = APIRouter(include_in_schema=False)


@router.get("/api/models/{owner}/{project}/{model}/examples")
async def list_model_examples(
    owner: str, project: str, model: str, caller: PredictCallerDep, catalog: CatalogDep, settings: SettingsDep
) -> Response:
    served = await visible_model(catalog, caller, owner, project, model)
    folder = settings.model_repository / served.triton_name / served.version / EXAMPLES_DIR
    names = (
        sorted(
            p.name
            for p in folder.iterdir()
            if EXAMPLE_NAME.match(p.name) and p.is_file() and not p.is_symlink()
        )
        if folder.is_dir()
        else []
    )
    return json_response({"examples": names})


@router.get("/api/models/{owner}/{project}/{model}/examples/{name}")
async def model_example(
    owner: str,
    project: str,
    model: str,
    name: str,
    caller: PredictCallerDep,
    catalog: CatalogDep,
    settings: SettingsDep,
) -> Response:
    served = await visible_model(catalog, caller, owner, project, model)
    match = EXAMPLE_NAME.match(name)
    path = settings.model_repository / served.triton_name / served.version / EXAMPLES_DIR / name
    if match is None or not path.is_file() or path.is_symlink():
        raise NotFound(f"{served.slug} has no example image {name}")
    media_type = MEDIA_TYPES[match.group(1)]
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})


def _preview(data: bytes, max_pixels: int) -> bytes:
    image = decode_image(data, max_pixels)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any BGR uint8 image
        raise InvalidImage("the image could not be previewed")
    return np.asarray(encoded, np.uint8).tobytes()


@router.post("/api/preview")
async def preview(
    request: Request, caller: PredictCallerDep, quota: QuotaDep, services: ServicesDep, settings: SettingsDep
) -> Response:
    """multipart `file` -> `image/jpeg`, the picture predict would see (400 for what predict refuses)."""
    try:
        data = await _read_file(request, settings.max_upload_bytes)
        jpeg = await run_cpu(services.engine, _preview, data, settings.max_image_pixels)
    except ServingError as exc:
        exc.headers.update(quota.headers())
        raise
    headers = {"Cache-Control": "no-store", **quota.headers()}
    return Response(jpeg, media_type="image/jpeg", headers=headers)


async def _read_file(request: Request, max_bytes: int) -> bytes:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("send the image as multipart/form-data with a 'file' field")
    try:
        form = await request.form(max_files=1, max_fields=4)
    except (ServingError, BodyTooLarge):
        raise
    except Exception:
        raise InvalidRequest("the multipart body could not be parsed") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidImage("no image: send it in the 'file' field")
        data = await upload.read(max_bytes + 1)
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the image is larger than {max_bytes // MB} MB")
    return data
