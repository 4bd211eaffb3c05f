"""The app's lifespan, in-process (no Triton needed: it is only asked for models in the background)."""

from __future__ import annotations

import gc
import socket
from pathlib import Path

from fastapi.testclient import TestClient

from core.settings import Settings
from frontend.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_what_lives_from_startup_is_kept_out_of_full_garbage_collections(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'keys.db'}", triton_grpc_port=free_port()
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").status_code == 200
        assert gc.get_freeze_count() > 10_000  # modules, the app, the clients: never garbage
    assert gc.get_freeze_count() == 0  # handed back at shutdown
