"""All configuration, from environment variables prefixed `TRIDENT_` (listed in
docs/operations/configuration.md).

The defaults serve the local stack: API on 127.0.0.1:8080, Triton gRPC 8001, HTTP 8000, metrics 8002.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "TRIDENT_"
MB = 1024 * 1024  # the upload limits are said in these
# `TRIDENT_` variables that are not settings: the web UI's curl and Python snippets read the key from it.
NOT_SETTINGS = frozenset({"TRIDENT_API_KEY"})


class Settings(BaseSettings):
    # forbid: a misspelt keyword is an error, not a default silently kept (unknown environment
    # variables never reach the model: `unknown_env` reports those)
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1

    triton_host: str = "127.0.0.1"
    triton_grpc_port: int = 8001
    triton_http_port: int = 8000
    triton_metrics_port: int = 8002
    triton_timeout_s: float = Field(
        10.0, gt=0, description="deadline of one inference call (a video's calls run on its own deadline)"
    )
    triton_shared_memory: Literal["auto", "off"] = Field(
        "auto", description="auto: inputs through /dev/shm when Triton's host is loopback, gRPC on failure"
    )

    model_repository: Path = Path("model_repository")
    data_dir: Path = Path(".trident")
    triton_runtime_dir: Path | None = Field(None, description="default: <data_dir>/triton-runtime")
    model_refresh_s: float = Field(
        2.0, gt=0, description="how often the frontend rereads Triton's index and loads new models/versions"
    )

    database_url: str = Field("", description="key store; default: SQLite file <data_dir>/trident.db")
    key_cache_s: float = Field(
        5.0,
        ge=0,
        le=60,
        description="verified keys kept in the process at most this long (changes apply at once); 0: off",
    )
    redis_url: str = Field("", description="shared rate-limit counters; empty: in memory (one process)")
    redis_timeout_s: float = Field(
        0.5, gt=0, description="Redis socket timeout; past it the limiter fails closed"
    )
    plans: dict[str, tuple[int, int]] = Field(
        {"free": (10, 100), "pro": (60, 10_000)}, description="plan -> (requests per minute, per day)"
    )
    auth_failures_per_minute: int = Field(
        30, ge=0, description="refused keys per client IP and minute before 429 instead of 401; 0: off"
    )
    anonymous_plan: str = Field(
        "", description="a plan: public models answer without a key, limited per client IP; empty: off"
    )
    token_secret: SecretStr = Field(
        SecretStr(""), description="signs the Test tab's tokens; empty: generated, kept in the key store"
    )
    max_in_flight: int = Field(32, ge=1, description="inferences per worker at once; past it 503 at once")
    max_upload_bytes: int = 10 * MB
    max_image_pixels: int = Field(40_000_000, description="width x height above which an image is refused")
    cpu_threads: int = Field(4, ge=1, description="threads for decode, letterbox and postprocessing")
    cpu_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="niceness the CPU threads add to theirs: on saturated cores the event loop (accept, "
        "refuse at capacity, health) runs first; 0 keeps them equal",
    )
    max_video_bytes: int = Field(
        100 * MB, ge=1, description="largest video upload (images: max_upload_bytes)"
    )
    max_video_frames: int = Field(
        9000,
        ge=1,
        description="frames a video may have (read from the container, else counted while decoding)",
    )
    video_timeout_s: float = Field(300.0, gt=0, description="deadline of one video request, upload excluded")

    track_session_idle_s: float = Field(
        60.0, gt=0, description="a track session unused this long ends (then 410 for 10x as long, >= 10 min)"
    )
    track_sessions_per_key: int = Field(
        8, ge=1, description="track sessions one key keeps; starting one more ends its least recently used"
    )

    deployment_log_lines: int = Field(
        10_000, ge=1, description="recent log lines kept per deployment (older ones are dropped)"
    )
    deployment_flush_s: float = Field(
        5.0, gt=0, description="how often deployments' request counts and log lines reach the database"
    )

    api_format: Literal["seed", "platform"] = Field(
        "seed", description="the predict answer's contract when a request names none (`?format=`)"
    )
    region: Literal["us", "eu", "ap"] = Field(
        "us", description="what the Platform's `models.list` reports as region (its contract requires one)"
    )
    source_allow_private: bool = Field(
        False, description="let `source` URLs reach loopback and private addresses (tests, closed networks)"
    )
    source_max_concurrent: int = Field(4, ge=1, description="`source` URL fetches per worker at once")
    source_connect_timeout_s: float = Field(5.0, gt=0, description="`source` fetch: connect deadline")
    source_timeout_s: float = Field(10.0, gt=0, description="`source` fetch: whole-download deadline")

    streams_per_key: int = Field(4, ge=0, description="camera streams one key may define")
    streams_run: bool = Field(
        True,
        description="this process runs camera streams (each stream runs in one process at a time, "
        "the holder of its lease in the database); false: it only answers the API about them",
    )
    stream_lease_s: float = Field(
        15.0, gt=0, description="a stream's lease; a process renews its own every third of it"
    )
    stream_events_buffer: int = Field(
        300, ge=1, description="events kept per stream for clients resuming with Last-Event-ID"
    )
    stream_connect_timeout_s: float = Field(10.0, gt=0, description="a stream source's connect deadline")
    stream_read_timeout_s: float = Field(
        10.0, gt=0, description="a stream source silent this long is reconnected"
    )
    stream_backoff_max_s: float = Field(
        30.0, gt=0, description="longest wait before reconnecting (0.5 s, 1 s, 2 s ... up to this)"
    )
    stream_give_up_after: int = Field(
        0, ge=0, description="failed connections in a row before a stream is failed; 0: never"
    )
    stream_webhook_queue: int = Field(
        100, ge=1, description="events waiting for a stream's webhook; when full the oldest is dropped"
    )
    stream_webhook_attempts: int = Field(
        6, ge=1, description="tries of one webhook delivery (5xx, 408, 429, timeouts) before it is failed"
    )
    stream_webhook_timeout_s: float = Field(5.0, gt=0, description="one webhook POST's deadline")
    stream_webhook_backoff_max_s: float = Field(
        30.0, gt=0, description="longest wait between webhook tries (0.5 s, 1 s, 2 s ... up to this)"
    )
    stream_record_dir: Path | None = Field(
        None, description="tests: each processed frame written there as <stream>/<frame>.png"
    )

    # weights brought through the API (`store.uploads`, `trident worker`, `exporter.sandbox`)
    upload_max_bytes: int = Field(500 * MB, ge=1, description="largest checkpoint an upload URL takes")
    upload_url_ttl_s: float = Field(3600.0, gt=0, description="how long an upload URL stays valid (one PUT)")
    upload_predict_wait_s: float = Field(
        55.0, ge=0, description="predict on a model whose upload is still exporting waits this long for it"
    )
    export_lease_s: float = Field(
        30.0, gt=0, description="an export job's lease; its worker renews it every third, a dead one's ends"
    )
    export_poll_s: float = Field(1.0, gt=0, description="how often an idle worker looks for export jobs")
    export_timeout_s: float = Field(900.0, gt=0, description="wall time of one sandboxed export")
    export_memory_bytes: int = Field(8192 * MB, ge=MB, description="sandboxed export: address space")
    export_cpu_s: int = Field(1800, ge=1, description="sandboxed export: CPU seconds")
    export_processes: int = Field(256, ge=8, description="sandboxed export: processes of its uid")
    export_cpus: float = Field(
        2.0, gt=0, description="sandboxed export: cores it may use at once (a CPU quota on its cgroup)"
    )
    export_sandbox_uid: int = Field(
        64999, ge=1, description="the sandbox's own uid (no other process should run as it)"
    )

    # `trident run`'s supervision of its children (tritonserver, the frontend): see trident/supervisor.py
    restart_limit: int = Field(
        5, ge=0, description="restarts of one child allowed within restart_window_s; one more crash gives up"
    )
    restart_window_s: float = Field(600.0, gt=0, description="the sliding window restart_limit counts in")
    restart_backoff_max_s: float = Field(
        30.0, gt=0, description="longest wait before a restart (1 s, 2 s, 4 s ... up to this)"
    )
    triton_start_timeout_s: float = Field(
        120.0, gt=0, description="a started tritonserver not ready by then counts as failed and is restarted"
    )

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def triton_http_url(self) -> str:
        return f"http://{self.triton_host}:{self.triton_http_port}"

    @property
    def key_store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'trident.db').resolve()}"

    @property
    def uploads_dir(self) -> Path:
        """Upload staging, accepted checkpoints and sandbox scratch: never inside the repository."""
        return (self.data_dir / "uploads").resolve()

    @property
    def runtime_dir(self) -> Path:
        """The local Triton runtime's own virtualenv (nvidia-pytriton, numpy<2, onnxruntime)."""
        return (self.triton_runtime_dir or self.data_dir / "triton-runtime").resolve()


def unknown_env(environ: Mapping[str, str]) -> list[str]:
    """One sentence per `TRIDENT_` variable that matches no setting, naming the closest one: pydantic
    reads only the variables that match a field, so a misspelt one would silently keep the default."""
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in fields or upper in NOT_SETTINGS:
            continue
        # matched without the shared prefix, which would make every name look close
        close = difflib.get_close_matches(
            upper.removeprefix(ENV_PREFIX).lower(), list(Settings.model_fields), 1
        )
        hint = f"; did you mean {ENV_PREFIX}{close[0].upper()}?" if close else ""
        problems.append(f"{name} is not a Trident setting{hint}")
    return problems
