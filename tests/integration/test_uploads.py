"""Weights through the API: the real, unmodified `ul cloud predict model=best.pt` and
`ul cloud export model=best.pt format=onnx` against Trident, the SDK's resources and errors, and
the worker's sandbox against checkpoints whose unpickling attacks it.

A frontend on the session stack (Platform format, its own data folder) and a `trident worker`
publish into the session's repository, which the session Triton serves. The demo checkpoint is
the session's busy YOLO11n (`tests.helpers.models`), byte for byte the one the stack exported as
`test/coco/yolo11n` with `trident export`'s code, so both must give the same boxes. Exports cost
CPU: the two `ul` runs export once each; the error cases stop before any export, and the crafted
checkpoints fail inside the sandbox within seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from ultralytics_platform import APIError, Platform
from ultralytics_platform.types import (
    AccountSummaryResponse,
    ExportsRetrieveResponseExport,
    ModelsFilesResponse,
    ProjectsRetrieveResponse,
)

from store.keys import KeyStore
from store.uploads import UploadStore
from tests.helpers.postgres import Postgres
from tests.helpers.sdk_contract import assert_matches
from tests.helpers.stack import Stack, free_port
from tests.helpers.uploads import crafted, new_model, predict, put, signed, upload, wait_export
from tests.helpers.uploads import ul as run_ul
from trident import runtime

pytestmark = pytest.mark.integration
USER = "uploader"
TRIDENT_EXTRAS = ("progress", "parity")  # Trident's own keys on an export, beside the SDK's


@dataclass
class Uploads:
    base: str
    key: str  # scopes predict + export
    predict_key: str  # scope predict only
    data_dir: Path
    repository: Path
    settings: dict[str, str]  # the frontend's and worker's own settings, beside the stack's

    def client(self, key: str | None = None) -> Platform:
        return Platform(api_key=key or self.key, base_url=self.base, max_retries=0)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "trident", "worker"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


@pytest.fixture(scope="module")
def uploads(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uploads]:
    root = tmp_path_factory.mktemp("uploads")
    own = {
        "TRIDENT_DATA_DIR": str(root / "data"),
        "TRIDENT_TRITON_RUNTIME_DIR": str(stack.settings.runtime_dir),
        "TRIDENT_API_FORMAT": "platform",
        "TRIDENT_EXPORT_POLL_S": "0.2",
        "TRIDENT_EXPORT_PROCESSES": "48",  # the fork bomb's ceiling on a shared 2-core test machine
    }
    frontend, base = stack.spawn_frontend(root / "frontend.log", **own)
    env = {**stack.env, **own}
    worker = start_worker(env, root / "worker.log")
    keys = KeyStore(stack.settings.key_store_url)
    key = keys.create_key(USER, "test", scopes=["predict", "export"])[0]
    predict_key = keys.create_key(USER, "test", scopes=["predict"])[0]
    try:
        yield Uploads(base, key, predict_key, root / "data", stack.repository, own)
        # the session's Triton serves the next files' tests: what this module uploaded goes
        with Platform(api_key=key, base_url=base, max_retries=0) as client:
            for model in UploadStore(keys.engine).models(USER):
                client.models.delete(model.owner, model.project, model.model)
    finally:
        runtime.stop(worker, 10)
        runtime.stop(frontend)


def ul(uploads: Uploads, cwd: Path, *args: str) -> str:
    """`ul cloud <args>` in `cwd` with the uploader's key; its output (it must succeed)."""
    return run_ul(uploads.base, uploads.key, cwd, *args)


@pytest.fixture(scope="module")
def ul_predicted(
    uploads: Uploads, yolo11n_pt: Path, bus: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """`ul cloud predict model=best.pt source=bus.jpg` run once; the slug it uploaded to."""
    cwd = tmp_path_factory.mktemp("ul-predict")
    best = cwd / "best.pt"
    shutil.copyfile(yolo11n_pt, best)
    output = ul(uploads, cwd, "predict", f"model={best}", f"source={bus}")
    uri = re.search(r"Model: ul://(\S+)", output)
    assert uri, output[-2000:]
    assert re.search(r"Results saved to .*runs", output), output[-2000:]
    return uri.group(1)


def test_ul_cloud_predict_uploads_exports_and_predicts_as_trident_export_does(
    uploads: Uploads, ul_predicted: str, bus: Path
) -> None:
    slug = ul_predicted
    assert slug == f"{USER}/cloud-training/best"
    with uploads.client() as client:
        for conf in (0.25, 0.02):  # ul's default, and one where the busy model finds 300
            ours, theirs = (
                predict(client, slug, bus, conf=conf),
                predict(client, "test/coco/yolo11n", bus, conf=conf),
            )
            assert ours == theirs
        assert len(ours) == 300
        model: Any = client.models.retrieve(*slug.split("/"))
        assert model["model"]["task"] == "detect" and model["model"]["hasWeights"] is True
        files: Any = client.models.files(*slug.split("/"))
        assert_matches(files, ModelsFilesResponse)
        (onnx_file,) = files["files"]
        assert onnx_file["name"] == "best-v1.onnx" and onnx_file["size"] > 1e6
        project: Any = client.projects.retrieve(USER, "cloud-training")
        assert_matches(project, ProjectsRetrieveResponse)
        assert [m["model"] for m in project["models"]][:1] == ["best"]
        assert project["models"][0]["status"] == "completed"


def test_ul_cloud_export_downloads_the_onnx_the_exporter_makes(
    stack: Stack, uploads: Uploads, yolo11n_pt: Path, bus: Path, tmp_path: Path
) -> None:
    best = tmp_path / "best.pt"
    shutil.copyfile(yolo11n_pt, best)
    output = ul(uploads, tmp_path, "export", f"model={best}", "format=onnx")
    saved = re.search(r"Saved: (\S+\.onnx)", output)
    assert saved, output[-2000:]
    downloaded = Path(saved.group(1))
    assert downloaded.parent == tmp_path and downloaded.is_file()
    job = json.loads(output[output.index("{") : output.rindex("}") + 1])
    assert_matches({k: v for k, v in job.items() if k not in TRIDENT_EXTRAS}, ExportsRetrieveResponseExport)
    assert job["status"] == "completed" and job["progress"]["percent"] == 100
    assert job["parity"]["matched"] == 50 and job["parity"]["reference"] == 300  # the parity gate's figures
    exporter = stack.exported["test/coco/yolo11n"].path / "model.onnx"
    rng = np.random.default_rng(0)
    tensors = [rng.random((1, 3, 640, 640), dtype=np.float32), np.zeros((1, 3, 640, 640), np.float32)]
    for tensor in tensors:
        outputs = []
        for path in (downloaded, exporter):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            outputs.append(session.run(None, {session.get_inputs()[0].name: tensor}))
        assert len(outputs[0]) == len(outputs[1])
        for ours, theirs in zip(*outputs, strict=True):
            np.testing.assert_array_equal(ours, theirs)


def trident_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trident", *args], env=stack.env, capture_output=True, text=True, check=False
    )


def test_a_version_a_deployment_serves_cannot_be_removed_until_the_deployment_goes(
    stack: Stack, uploads: Uploads, ul_predicted: str
) -> None:
    owner, project, model = ul_predicted.split("/")
    key = KeyStore(stack.settings.key_store_url).create_key(
        USER, "test", scopes=["predict", "export", "deployments"]
    )[0]
    folder = uploads.repository / f"{owner}~{project}~{model}"
    row = UploadStore(KeyStore(stack.settings.key_store_url).engine).model(owner, project, model)
    assert row is not None and row.checkpoint is not None and Path(row.checkpoint).is_file()
    with uploads.client(key) as client:
        client.deployments.create(
            owner, project=project, model=model, deployment="best-endpoint", name="Best", region="us-central1"
        )
        deadline = time.monotonic() + 120
        while client.deployments.retrieve(owner, "best-endpoint")["deployment"]["status"] != "ready":
            assert time.monotonic() < deadline, "the deployment did not become ready"
            time.sleep(0.5)
        with pytest.raises(APIError) as busy:
            client.models.delete(owner, project, model)
        assert busy.value.status_code == 409 and "'best-endpoint'" in busy.value.body
        listed = trident_cli(stack, "models", "list")
        assert f"{ul_predicted}  version 1" in listed.stdout and "served by best-endpoint" in listed.stdout
        refused = trident_cli(stack, "models", "remove", ul_predicted)
        assert refused.returncode == 1 and "'best-endpoint'" in refused.stderr
        assert (folder / "1" / "model.onnx").is_file()

        client.deployments.delete(owner, "best-endpoint")
        deadline = time.monotonic() + 60
        while any(d["deployment"] == "best-endpoint" for d in client.deployments.list(owner)["deployments"]):
            assert time.monotonic() < deadline, "the deployment was not deleted"
            time.sleep(0.5)
        assert client.models.delete(owner, project, model) == {"success": True}
        assert not folder.exists()
        with pytest.raises(APIError) as gone:
            client.models.retrieve(owner, project, model)
        assert gone.value.status_code == 404
    assert not Path(row.checkpoint).exists()


# --- the SDK's resources and errors


def left_behind(uploads: Uploads) -> dict[str, list[str]]:
    """What staging, the checkpoints and the repository hold (files, relative)."""
    folders = {
        "staging": uploads.data_dir / "uploads" / "staging",
        "scratch": uploads.data_dir / "uploads" / "scratch",
        "repository": uploads.repository,
    }
    return {
        name: sorted(str(p.relative_to(f)) for p in f.rglob("*") if p.is_file()) if f.is_dir() else []
        for name, f in folders.items()
    }


def test_account_summary_and_projects_answer_in_the_sdks_shapes(uploads: Uploads) -> None:
    with uploads.client() as client:
        summary: Any = client.account.summary()
        assert_matches(summary, AccountSummaryResponse)
        assert summary["username"] == USER
        new_model(client, "shapes", "m")
        listed: Any = client.projects.list(USER)
        assert "shapes" in [p["project"] for p in listed["projects"]]
        with pytest.raises(APIError) as taken:
            client.projects.create(owner=USER, project="shapes", name="again")
        assert taken.value.status_code == 409
        with pytest.raises(APIError) as other:
            client.projects.retrieve("test", "coco")  # another user's: not found
        assert other.value.status_code == 404
        for bad in ("", "Shapes", "-shapes", "a" * 65):  # the slug rule, declared in the body's schema
            with pytest.raises(APIError) as refused:
                client.projects.create(owner=USER, project=bad, name="bad")
            assert refused.value.status_code == 400, bad
        client.projects.create(owner=USER, project="a" * 64, name="longest")  # at the limit: accepted


def test_uploading_needs_the_export_scope(uploads: Uploads) -> None:
    with uploads.client() as client:
        created = new_model(client, "scoped", "m")
    with uploads.client(uploads.predict_key) as client:
        for call in (
            lambda: client.models.create(body={"project": "scoped", "model": "n"}),
            lambda: signed(client, created["id"], 10),
        ):
            with pytest.raises(APIError) as refused:
                call()
            assert refused.value.status_code == 403 and "'export' scope" in refused.value.body


def test_a_task_trident_cannot_serve_is_refused_naming_the_served_ones(uploads: Uploads) -> None:
    with uploads.client() as client:
        new_model(client, "tasks", "m")
        with pytest.raises(APIError) as refused:
            client.models.create(body={"project": "tasks", "model": "x", "task": "track"})
    assert refused.value.status_code == 400
    assert "'track' cannot be served here" in refused.value.body and "obb" in refused.value.body


def test_a_used_url_a_wrong_digest_an_oversize_body_and_a_non_checkpoint_are_refused_leaving_nothing(
    uploads: Uploads, yolo11n_pt: Path
) -> None:
    before = left_behind(uploads)
    data = yolo11n_pt.read_bytes()
    with uploads.client() as client:
        model = new_model(client, "errors", "m")
        first = signed(client, model["id"], len(data))
        assert put(first["uploadUrl"], data).status_code == 200
        again = put(first["uploadUrl"], data)
        assert again.status_code == 409 and "used already" in again.text
        with pytest.raises(APIError) as digest:
            client.upload.complete(session_id=first["sessionId"], checksum="0" * 64)
        assert digest.value.status_code == 400 and "SHA-256 differs" in digest.value.body
        second = signed(client, model["id"], len(data))
        assert put(second["uploadUrl"], data).status_code == 200
        with pytest.raises(APIError) as odd:  # a non-ASCII digest: a refusal, not a 500
            client.upload.complete(session_id=second["sessionId"], checksum="\u00e9" * 64)
        assert odd.value.status_code == 400 and "SHA-256 differs" in odd.value.body

        oversize = signed(client, model["id"], 1000)
        at_limit = signed(client, model["id"], 1000)
        too_big = put(oversize["uploadUrl"], b"x" * 1001)
        assert too_big.status_code == 413 and "1000" in too_big.text
        assert put(at_limit["uploadUrl"], b"x" * 1000).status_code == 200  # exactly the size: taken
        with pytest.raises(APIError) as not_zip:  # ... and refused as what it is
            client.upload.complete(session_id=at_limit["sessionId"])
        assert not_zip.value.status_code == 400 and "not a checkpoint" in not_zip.value.body
        with pytest.raises(APIError) as incomplete:
            client.upload.complete(session_id=oversize["sessionId"])
        assert incomplete.value.status_code == 400 and "nothing complete" in incomplete.value.body

        with pytest.raises(APIError) as over_max:  # past the server's limit: refused before any byte
            signed(client, model["id"], 500 * 1024 * 1024 + 1)
        assert over_max.value.status_code == 413 and "TRIDENT_UPLOAD_MAX_BYTES" in over_max.value.body
        signed(client, model["id"], 500 * 1024 * 1024)  # at it: a URL

        forged = first["uploadUrl"].replace("token=", "token=x")
        assert put(forged, data).status_code == 403
    signature = "%C3%A9" * 64  # a non-ASCII signature on a download URL: refused, never a 500
    far = int(time.time()) + 3600
    odd = httpx.get(f"{uploads.base}/api/exports/none/download?expires={far}&signature={signature}")
    assert odd.status_code == 403 and "not valid or expired" in odd.text
    assert left_behind(uploads) == before
    assert not list((uploads.data_dir / "uploads" / "checkpoints").glob(f"{model['id']}/*"))


def test_an_expired_upload_url_is_refused(stack: Stack, uploads: Uploads, tmp_path: Path) -> None:
    process, base = stack.spawn_frontend(
        tmp_path / "frontend.log", **{**uploads.settings, "TRIDENT_UPLOAD_URL_TTL_S": "1"}
    )
    try:
        with Platform(api_key=uploads.key, base_url=base, max_retries=0) as client:
            model = new_model(client, "expiry", "m")
            url = signed(client, model["id"], 10)["uploadUrl"]
            time.sleep(1.2)
            late = put(url, b"x" * 10)
        assert late.status_code == 410 and "expired" in late.text
    finally:
        runtime.stop(process)


def zip_not_checkpoint(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"not a pickle")
    return path


def test_a_zip_that_is_no_checkpoint_fails_its_export_with_the_reason(
    uploads: Uploads, tmp_path: Path
) -> None:
    before = left_behind(uploads)
    with uploads.client() as client:
        slug = upload(client, "broken", "m", zip_not_checkpoint(tmp_path / "best.pt"))
        job = wait_export(client, slug)
        assert job["status"] == "failed" and "is not an Ultralytics checkpoint" in job["error"]["message"]
        retrieved: Any = client.models.retrieve(*slug.split("/"))
        assert retrieved["model"]["status"] == "failed"
        with (
            pytest.raises(APIError) as missing,
            (Path(__file__).parents[1] / "fixtures" / "tiny.png").open("rb") as f,
        ):
            client.models.predict(*slug.split("/"), body={"file": f})
        assert missing.value.status_code == 404 and "export failed" in missing.value.body
        with pytest.raises(APIError) as engine:
            client.exports.create(*slug.split("/"), format="engine")
        assert engine.value.status_code == 400 and "supported: onnx" in engine.value.body
    assert left_behind(uploads) == before


# --- the sandbox


@dataclass
class Listener:
    port: int
    accepted: list[str]


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.create_server(("127.0.0.1", free_port()))
    accepted: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, address = server.accept()
            except OSError:
                return
            accepted.append(str(address))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield Listener(server.getsockname()[1], accepted)
    finally:
        server.close()


ATTACKS = {  # name -> (code run at unpickling, words the job's error must hold)
    "read the key store": (
        "open({db!r}, 'rb').read(); raise RuntimeError('READ THE KEY STORE')",
        "No such file",
    ),
    "write outside": (
        "open({escape!r}, 'w').write('x'); open({repo_escape!r}, 'w').write('x'); "
        "raise RuntimeError('WROTE')",
        "No such file",
    ),
    "open a socket": (
        "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); "
        "raise RuntimeError('CONNECTED')",
        "Connection refused",  # its own network namespace: a loopback with nothing on it
    ),
    "fork without end": ("import os\nwhile True: os.fork()", "Resource temporarily unavailable"),
    "leave a process behind": (  # the job ends with the exporter, not when the sleeper would
        "import os, time\nif os.fork() == 0:\n    time.sleep(3600)\nraise RuntimeError('LEFT ONE BEHIND')",
        "LEFT ONE BEHIND",
    ),
    "allocate 20 GB": ("bytearray(20 * 1024 ** 3); raise RuntimeError('ALLOCATED')", "MemoryError"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_checkpoint_attacking_the_sandbox_fails_its_job_and_changes_nothing_outside(
    stack: Stack, uploads: Uploads, listener: Listener, tmp_path: Path, bus: Path, attack: str
) -> None:
    code, reason = ATTACKS[attack]
    db = stack.settings.key_store_url.removeprefix("sqlite:///")
    escape, repo_escape = tmp_path / "escaped.txt", uploads.repository / "escaped.txt"
    code = code.format(db=db, escape=str(escape), repo_escape=str(repo_escape), port=listener.port)
    weights = crafted(tmp_path / "best.pt", code)
    before = left_behind(uploads)
    with uploads.client() as client:
        slug = upload(client, "attacks", re.sub(r"[^a-z0-9]+", "-", attack), weights)
        job = wait_export(client, slug)
        assert job["status"] == "failed", job
        assert reason in job["error"]["message"], job["error"]
        assert not any(
            word in job["error"]["message"] for word in ("READ THE", "WROTE", "CONNECTED", "ALLOCATED")
        )
        assert len(predict(client, "test/coco/yolo11n", bus, conf=0.02)) == 300  # still serving
    assert not escape.exists() and not repo_escape.exists()
    assert listener.accepted == []
    assert left_behind(uploads) == before  # scratch removed, nothing published or staged


# --- jobs on PostgreSQL


def job_state(store: UploadStore, job_id: str) -> Any:
    job = store.job(job_id)
    assert job is not None
    return job


def taken_by(store: UploadStore, job_id: str, attempt: int, pid: int) -> bool:
    job = job_state(store, job_id)
    return bool(job.attempts == attempt and str(job.lease_owner).endswith(f":{pid}"))


def wait_until(check: Any, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_worker_killed_mid_job_leaves_it_retried_once_then_failed_while_the_old_version_serves(
    stack: Stack, postgres: Postgres, tmp_path: Path
) -> None:
    """The job re-exports the served `test/coco/yolo11n` from a checkpoint whose loading never ends;
    its worker is killed twice mid-job (the sandbox dies with it); the third worker fails the job
    with the reason. A frontend on the same PostgreSQL answers predicts on the old version all along."""
    keys = KeyStore(postgres.url)
    key = keys.create_key("test", "test")[0]
    store = UploadStore(keys.engine)
    store.create_project("test", "coco", "coco", "public")
    model = store.create_model("test", "coco", "yolo11n", "yolo11n", "detect")
    slow = crafted(tmp_path / "slow.pt", "import time; time.sleep(600)")
    session, token = store.open_upload(model.id, "test", "slow.pt", slow.stat().st_size, 60)
    store.take_for_put(session.id, token)
    store.received(session.id, slow.stat().st_size, "0" * 64, "0" * 32)
    job_id = store.accept(session.id, str(slow)).id
    published = sorted(p.name for p in (stack.repository / "test~coco~yolo11n").iterdir())
    env = {
        **stack.env,
        "TRIDENT_DATABASE_URL": postgres.url,
        "TRIDENT_DATA_DIR": str(tmp_path / "data"),
        "TRIDENT_TRITON_RUNTIME_DIR": str(stack.settings.runtime_dir),
        "TRIDENT_EXPORT_LEASE_S": "3",
        "TRIDENT_EXPORT_POLL_S": "0.2",
    }
    frontend, base = stack.spawn_frontend(tmp_path / "frontend.log", TRIDENT_DATABASE_URL=postgres.url)
    answers: list[int] = []
    done = threading.Event()
    tiny = Path(__file__).parents[1] / "fixtures" / "tiny.png"

    def keep_predicting() -> None:
        while not done.wait(0.5):
            with tiny.open("rb") as f:
                answers.append(
                    httpx.post(
                        f"{base}/api/models/test/coco/yolo11n/predict",
                        headers={"Authorization": f"Bearer {key}"},
                        files={"file": ("tiny.png", f)},
                        timeout=30,
                    ).status_code
                )

    predictor = threading.Thread(target=keep_predicting)
    predictor.start()
    try:
        for attempt in (1, 2):
            worker = start_worker(env, tmp_path / "worker.log")
            wait_until(partial(taken_by, store, job_id, attempt, worker.pid), f"attempt {attempt} not taken")
            held = len(answers)  # the worker is in the sandbox, loading the checkpoint: predicts go on
            wait_until(lambda seen=held: len(answers) >= seen + 2, "no predict answered while the job ran")
            worker.kill()
            worker.wait()
            assert job_state(store, job_id).status == "running"
        last = start_worker(env, tmp_path / "worker.log")
        try:
            wait_until(lambda: job_state(store, job_id).status == "failed", "the job was not failed")
        finally:
            runtime.stop(last, 10)
        job = job_state(store, job_id)
        assert job.attempts == 2 and "stopped mid-job 2 times" in job.error
    finally:
        done.set()
        predictor.join()
        runtime.stop(frontend)
    assert len(answers) >= 4 and set(answers) == {200}, answers
    assert sorted(p.name for p in (stack.repository / "test~coco~yolo11n").iterdir()) == published
    wait_until(
        lambda: not any(p.stat().st_uid == 64999 for p in Path("/proc").glob("[0-9]*")), "sandbox left"
    )
