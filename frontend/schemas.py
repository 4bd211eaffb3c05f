"""Response shapes, for the OpenAPI document at /docs (responses are built as plain dicts)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Box(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class Detection(BaseModel):
    class_: str = Field(alias="class", description="class name")
    class_id: int
    confidence: float
    box: Box


class ImageSize(BaseModel):
    width: int
    height: int


class Speed(BaseModel):
    preprocess: float = Field(description="ms: decode and letterbox")
    inference: float = Field(description="ms: the Triton call")
    postprocess: float = Field(description="ms: NMS and scaling")


class PredictResponse(BaseModel):
    success: bool = True
    predictions: list[Detection]
    image: ImageSize
    speed: Speed


class ErrorBody(BaseModel):
    code: str
    message: str = Field(description="the Platform's message, e.g. 'Invalid image'")
    detail: str


class ErrorResponse(BaseModel):
    success: bool = False
    error: ErrorBody


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "JPEG, PNG, WebP or GIF",
                        },
                        "conf": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.25},
                        "iou": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.45},
                        "imgsz": {"type": "integer", "minimum": 32, "maximum": 1280, "default": 640},
                    },
                }
            }
        },
    }
}
