"""Weights through the API as a user's client sends them: a model made with the SDK, a signed
upload URL, the PUT, `upload.complete`, then the export job polled until it ends. Shared by the
local stack's upload tests and the container stack's worker check; the owner is the key's user
(`account.summary`), so each caller's key decides it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import torch
from ultralytics_platform import APIError, Platform
from ultralytics_platform.types import (
    ModelsCreateResponse,
    ProjectsCreateResponse,
    UploadCompleteResponse,
    UploadSignedUrlResponse,
)

from tests.helpers.sdk_contract import assert_matches


def put(url: str, body: bytes) -> httpx.Response:
    return httpx.put(url, content=body, headers={"Content-Type": "application/octet-stream"}, timeout=30)


def owner(client: Platform) -> str:
    summary: Any = client.account.summary()
    return str(summary["username"])


def new_model(client: Platform, project: str, name: str, task: str = "detect") -> Any:
    """A model in the key user's `project` (made private if it is not there yet)."""
    user = owner(client)
    try:
        client.projects.retrieve(user, project)
    except APIError:
        made: Any = client.projects.create(owner=user, project=project, name=project, visibility="private")
        assert_matches(made, ProjectsCreateResponse)
    created: Any = client.models.create(body={"owner": user, "project": project, "model": name, "task": task})
    assert_matches(created, ModelsCreateResponse)
    return created


def signed(client: Platform, model_id: str, size: int, filename: str = "best.pt") -> Any:
    body = {
        "assetType": "models",
        "assetId": model_id,
        "filename": filename,
        "contentType": "application/octet-stream",
        "totalBytes": size,
    }
    answer: Any = client.upload.signed_url(body=body)
    assert_matches(answer, UploadSignedUrlResponse)
    return answer


def upload(client: Platform, project: str, name: str, weights: Path) -> str:
    """`weights` uploaded as a new model (its export queued); the model's slug."""
    model = new_model(client, project, name)
    data = weights.read_bytes()
    session = signed(client, model["id"], len(data))
    assert put(session["uploadUrl"], data).status_code == 200
    done: Any = client.upload.complete(
        session_id=session["sessionId"], checksum=f"sha256:{hashlib.sha256(data).hexdigest()}"
    )
    assert_matches(done, UploadCompleteResponse)
    return f"{owner(client)}/{project}/{model['model']}"


def wait_export(client: Platform, slug: str, timeout_s: float = 180) -> Any:
    """The slug's newest export once it has ended (completed, failed or cancelled)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        exports: Any = client.exports.list(*slug.split("/"))
        if exports["exports"] and exports["exports"][0]["status"] in ("completed", "failed", "cancelled"):
            return exports["exports"][0]
        time.sleep(0.5)
    raise AssertionError(f"the export of {slug} did not end in {timeout_s} s")


class Payload:
    """Pickled as a call of `exec(code)`: loading the checkpoint runs `code`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (self.code,))


def crafted(path: Path, code: str) -> Path:
    """A checkpoint whose unpickling runs `code` (what a hostile upload does)."""
    torch.save({"model": Payload(code), "train_args": {}}, path)
    return path
