"""Every error the API can answer, rendered in the Platform's envelope.

    ServingError (500 Server error)
    ├── InvalidRequest (400 Invalid request)   a parameter out of range or missing
    ├── InvalidImage (400 Invalid image)       not an image we accept, or undecodable
    ├── Unauthorized (401 Unauthorized, WWW-Authenticate)
    ├── Forbidden (403 Forbidden)              a key without the scope the call needs
    ├── ModelNotFound (404 Model not found)    also a model the key may not see
    ├── DeploymentNotFound (404 Deployment not found)
    ├── NotFound (404 Not found)               a static file or example image
    ├── Conflict (409 Conflict)
    ├── Gone (410 Gone)                        a track session the idle timeout or the bound ended
    ├── PayloadTooLarge (413 Payload too large)
    ├── RateLimited (429 Rate limited, Retry-After)
    ├── ServiceUnavailable (503 Service unavailable, Retry-After)
    └── InferenceTimeout (504 Inference timeout)

`message` is the Platform's words, `detail` says what exactly was wrong; the request's contract
(`pipeline.formats`) shapes the body. Never a stack trace.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar

import orjson
from starlette.responses import Response

from pipeline.contract import ApiFormat
from pipeline.formats import FORMATS, SEED, Format


class ServingError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "server_error"
    message: ClassVar[str] = "Server error"

    def __init__(
        self, detail: str = "", retry_after: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail or self.message)
        self.detail = detail or self.message
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    def to_response(self, contract: Format | ApiFormat = SEED) -> Response:
        body = self.body(contract)
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return Response(
            orjson.dumps(body), status_code=self.status_code, headers=headers, media_type="application/json"
        )

    def body(self, contract: Format | ApiFormat) -> dict[str, object]:
        """The body in `contract` (the format, or its name)."""
        chosen = FORMATS[contract] if isinstance(contract, str) else contract
        return chosen.error(self.code, self.message, self.detail)


class InvalidRequest(ServingError):
    status_code = 400
    code = "invalid_request"
    message = "Invalid request"


class InvalidImage(ServingError):
    status_code = 400
    code = "invalid_image"
    message = "Invalid image"


class Unauthorized(ServingError):
    status_code = 401
    code = "unauthorized"
    message = "Unauthorized"

    def __init__(self, detail: str = "", token_presented: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if token_presented else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(ServingError):
    status_code = 403
    code = "forbidden"
    message = "Forbidden"


class ModelNotFound(ServingError):
    status_code = 404
    code = "model_not_found"
    message = "Model not found"


class DeployFailed(ServingError):
    """A deployment's new model did not load, warm up or answer; it keeps what it served."""

    status_code = 422
    code = "deploy_failed"
    message = "Deployment failed"


class DeploymentNotFound(ServingError):
    status_code = 404
    code = "not_found"
    message = "Deployment not found"


class NotFound(ServingError):
    status_code = 404
    code = "not_found"
    message = "Not found"


class Conflict(ServingError):
    status_code = 409
    code = "conflict"
    message = "Conflict"


class Gone(ServingError):
    status_code = 410
    code = "gone"
    message = "Gone"


class BodyTooLarge(Exception):
    """Raised inside `receive` once an upload's stream passes the limit (`guards.body_limit`);
    whoever reads the body turns it into `PayloadTooLarge`."""


class PayloadTooLarge(ServingError):
    status_code = 413
    code = "payload_too_large"
    message = "Payload too large"


class RateLimited(ServingError):
    status_code = 429
    code = "rate_limited"
    message = "Rate limited"


class ServiceUnavailable(ServingError):
    status_code = 503
    code = "service_unavailable"
    message = "Service unavailable"

    def __init__(self, detail: str = "", retry_after: int | None = 1) -> None:
        super().__init__(detail, retry_after=retry_after)


class InferenceTimeout(ServingError):
    status_code = 504
    code = "inference_timeout"
    message = "Inference timeout"


def refusal(status: int, detail: str, headers: dict[str, str] | None = None) -> ServingError:
    """Starlette's own refusals (404 for an unknown route, 405 for a wrong method) as our errors."""
    phrase = HTTPStatus(status).phrase

    class Refused(ServingError):
        status_code, code, message = status, phrase.lower().replace(" ", "_"), phrase

    return Refused(detail, headers=headers)
