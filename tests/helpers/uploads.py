"""Weights through the API as a user's client sends them: a model made with the SDK, a signed
upload URL, the PUT, `upload.complete`, then the export job polled until it ends; and the SDK's
own CLI, `ul cloud ...`, run as a user runs it. Shared by the local stack's tests and the
container stack's; the owner is the key's user (`account.summary`), so each caller's key decides it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
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

UL = Path(sys.executable).parent / "ul"  # ultralytics-platform's console script, beside this Python


def own_settings(cwd: Path, runs_dir: Path) -> Path:
    """A YOLO_CONFIG_DIR whose settings save runs under `runs_dir`. (Fresh settings would put them
    in the git checkout that holds this virtualenv: Ultralytics roots `runs_dir` at its own repo.)"""
    from ultralytics.utils import SETTINGS

    folder = cwd / "config"
    (folder / "Ultralytics").mkdir(parents=True, exist_ok=True)
    settings = {**SETTINGS, "runs_dir": str(runs_dir), "sync": False, "api_key": ""}
    (folder / "Ultralytics" / "settings.json").write_text(json.dumps(settings, indent=2))
    return folder


def ul_env(platform_url: str, key: str, cwd: Path) -> dict[str, str]:
    """`ul`'s environment: this server and key, its own settings, none of pytest's variables
    (Ultralytics saves into its own test folder when it sees pytest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ULTRALYTICS_", "YOLO_"))}
    return env | {
        "ULTRALYTICS_PLATFORM_URL": platform_url,
        "ULTRALYTICS_API_KEY": key,
        "YOLO_CONFIG_DIR": str(own_settings(cwd, runs_dir=cwd / "runs")),
        "YOLO_OFFLINE": "1",
    }


def ul(platform_url: str, key: str, cwd: Path, *args: str) -> str:
    """`ul cloud <args>` in `cwd`; its output, colours removed (it must succeed)."""
    assert UL.is_file(), f"{UL} is not installed (ultralytics-platform's console script)"
    run = subprocess.run(
        [str(UL), "cloud", *args],
        cwd=cwd,
        env=ul_env(platform_url, key, cwd),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    assert run.returncode == 0, output[-3000:]
    return output


def predict(client: Platform, slug: str, image: Path, **options: Any) -> list[dict[str, Any]]:
    """The Platform answer's results for `image` (the SDK's `models.predict`, unnormalised boxes)."""
    with image.open("rb") as f:
        answer: Any = client.models.predict(*slug.split("/"), body={"file": f, "normalize": False, **options})
    results: list[dict[str, Any]] = answer["images"][0]["results"]
    return results


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
    return f"{model['owner']}/{model['project']}/{model['model']}"


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
