"""`trident run` (what `make run` starts): the whole stack from an empty repository, and the
curl it prints works as pasted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import Settings
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def test_run_serves_the_demo_models_and_its_printed_curl_finds_the_bus(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TRIDENT_PORT": str(free_port()),
        "TRIDENT_TRITON_GRPC_PORT": str(free_port()),
        "TRIDENT_TRITON_HTTP_PORT": str(free_port()),
        "TRIDENT_TRITON_METRICS_PORT": str(free_port()),
        "TRIDENT_MODEL_REPOSITORY": str(tmp_path / "repo"),
        "TRIDENT_DATA_DIR": str(tmp_path / "data"),
        "TRIDENT_TRITON_RUNTIME_DIR": str(Settings().runtime_dir),  # reuse the installed runtime
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "trident", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert run.stdout is not None
        deadline = time.monotonic() + 420  # the first run exports every demo model
        curl = ""
        while time.monotonic() < deadline and not curl:
            line = run.stdout.readline()
            if not line and run.poll() is not None:
                break
            curl = line.strip() if line.startswith("curl ") else ""
        assert curl, "trident run printed no curl command"
        assert "/api/models/demo/examples/detect/predict" in curl
        key = (tmp_path / "data" / "dev-api-key").read_text().strip()
        assert key.startswith("tri_") and key in curl

        out = subprocess.run(  # noqa: S602 - the point is to run the printed line as a user pastes it
            curl + " -w '\\n%{http_code}'", shell=True, capture_output=True, text=True, check=True
        ).stdout
        body, status = out.rsplit("\n", 1)
        assert status == "200", body
        response = json.loads(body)
        assert response["success"] is True
        assert response["image"] == {"width": 810, "height": 1080}
        assert {p["class"] for p in response["predictions"]} == {"person", "bus"}
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert run.wait(60) == 0
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", "Triton or the frontend outlived `trident run`"
