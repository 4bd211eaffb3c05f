"""Dedicated endpoints through the official SDK and `ul`, on the real stack: a deployment of model A
is replaced by B under load without a failed request, a broken B leaves A serving, rollback, stop
and start; its metrics and logs agree with the requests made; another user sees none of it.

The tests run in order on one deployment (module scope): each phase's numbers feed the metrics and
logs checks at the end.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from ultralytics_platform import APIError, Platform

from store import audit
from store.deployments import LATENCY_BUCKETS_MS
from store.keys import KeyStore, parse_key
from tests.helpers.stack import Stack, in_one_minute
from trident import runtime

pytestmark = pytest.mark.integration
OWNER, NAME = "test", "dep-a"
A, B = ("dedicated", "a"), ("dedicated", "b")  # yolo11n and yolo26n at 160 px: 900 requests stay cheap
BROKEN = ("broken", "b")
LOAD_REQUESTS, CONCURRENCY = 300, 4
BROKEN_LOAD_REQUESTS = 100  # the failed load takes a second or two: these cover it and then some
UL = Path(sys.executable).parent / "ul"
Boxes = list[tuple[int, float, float, float, float]]  # (class, x1, y1, x2, y2) per result


@dataclass
class Answer:
    request_id: str
    start: float
    end: float
    status: int
    model: str = ""
    boxes: Boxes = field(default_factory=list)


@dataclass
class Ledger:
    """Every predict this module sends to the deployment, by request id."""

    answers: dict[str, Answer] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers[answer.request_id] = answer


@pytest.fixture(scope="module")
def keys(stack: Stack) -> dict[str, str]:
    store = KeyStore(stack.settings.key_store_url)
    scopes = ("predict", "deployments")
    return {
        "owner": store.create_key(OWNER, "test", scopes=scopes)[0],
        "intruder": store.create_key("intruder", "test", scopes=scopes)[0],
    }


@pytest.fixture(scope="module")
def client(stack: Stack, keys: dict[str, str]) -> Iterator[Platform]:
    with Platform(api_key=keys["owner"], base_url=stack.base_url, max_retries=0, timeout=300) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def image(bus: Path) -> bytes:
    """The bus at 640x480: many boxes, little decoding."""
    ok, data = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(bus)), (640, 480)))
    assert ok
    return bytes(data)


def boxes(body: dict[str, Any]) -> Boxes:
    return [
        (r["class"], r["box"]["x1"], r["box"]["y1"], r["box"]["x2"], r["box"]["y2"])
        for r in body["images"][0]["results"]
    ]


@pytest.fixture(scope="module")
def exported(stack: Stack, yolo11n_pt: Path, yolo26n_pt: Path) -> None:
    for (project, model), weights in ((A, yolo11n_pt), (B, yolo26n_pt)):
        stack.export(weights, f"{OWNER}/{project}/{model}", imgsz=160)
        stack.wait_model(f"{OWNER}/{project}/{model}", timeout_s=30)


@pytest.fixture(scope="module")
def references(stack: Stack, image: bytes, exported: None) -> dict[str, Boxes]:
    """What A and B answer for the image through their public model routes."""
    found = {}
    for project, model in (A, B):
        r = httpx.post(
            f"{stack.base_url}/api/models/{OWNER}/{project}/{model}/predict?format=platform",
            headers={"Authorization": f"Bearer {stack.api_key}"},
            files={"file": ("bus.jpg", image)},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        found[f"{OWNER}/{project}/{model}"] = boxes(r.json())
    assert all(len(b) > 5 for b in found.values())
    assert found[f"{OWNER}/{A[0]}/{A[1]}"] != found[f"{OWNER}/{B[0]}/{B[1]}"]  # A and B can be told apart
    return found


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


def predict(client: Platform, image: bytes, ledger: Ledger) -> Answer:
    request_id = uuid.uuid4().hex
    start = time.monotonic()
    try:
        body = client.deployments.predict(
            OWNER, NAME, body={"file": ("bus.jpg", image)}, extra_headers={"X-Request-ID": request_id}
        )
    except APIError as exc:
        answer = Answer(request_id, start, time.monotonic(), exc.status_code)
    else:
        model = body["metadata"].get("model", "")
        answer = Answer(request_id, start, time.monotonic(), 200, model, boxes(dict(body)))
    ledger.add(answer)
    return answer


def predict_raw(stack: Stack, keys: dict[str, str], image: bytes, ledger: Ledger) -> httpx.Response:
    """A predict over plain HTTP, for the headers the SDK does not show (Retry-After); in the ledger."""
    request_id = uuid.uuid4().hex
    start = time.monotonic()
    r = httpx.post(
        f"{stack.base_url}/api/deployments/{OWNER}/{NAME}/predict",
        headers={"Authorization": f"Bearer {keys['owner']}", "X-Request-ID": request_id},
        files={"file": ("bus.jpg", image)},
        timeout=60,
    )
    ledger.add(Answer(request_id, start, time.monotonic(), r.status_code))
    return r


def same_boxes(got: Boxes, want: Boxes) -> bool:
    """Equal up to float noise (a batched run may differ from a lone one in the last digits)."""
    return len(got) == len(want) and all(
        g[0] == w[0] and all(abs(a - b) <= 1.0 for a, b in zip(g[1:], w[1:], strict=True))
        for g, w in zip(got, want, strict=True)
    )


def under_load(
    client: Platform,
    image: bytes,
    ledger: Ledger,
    change: Callable[[], object],
    requests: int = LOAD_REQUESTS,
) -> tuple[list[Answer], object]:
    """Predicts at `CONCURRENCY`: `change` runs once a tenth of `requests` answered, and the load
    goes on until `change` returned and another tenth was sent after it (at least `requests` in
    all). A fixed count could end before a slow switch (a busy machine) and prove nothing."""
    answered: list[Answer] = []
    lock = threading.Lock()
    warm, changed = threading.Event(), threading.Event()
    sent_after = 0

    def load() -> None:
        nonlocal sent_after
        while True:
            with lock:
                if changed.is_set():
                    if sent_after >= requests // 10 and len(answered) >= requests:
                        return
                    sent_after += 1
            answer = predict(client, image, ledger)
            with lock:
                answered.append(answer)
                if len(answered) >= requests // 10:
                    warm.set()

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        loaders = [pool.submit(load) for _ in range(CONCURRENCY)]
        warm.wait(120)
        try:
            outcome: object = change()
        except APIError as exc:
            outcome = exc
        changed.set()
        for loader in loaders:
            loader.result()
    return answered, outcome


def assert_switched(answers: list[Answer], old: str, new: str, references: dict[str, Any]) -> None:
    """Every answer 200, wholly from `old` or `new`, and none from `old` started after a `new` one
    had answered; both took part (otherwise the switch happened outside the load)."""
    assert [a.status for a in answers if a.status != 200] == []
    for a in answers:
        assert a.model in (old, new), a.model
        assert same_boxes(a.boxes, references[a.model]), f"{a.request_id}: not wholly {a.model}"
    first_new = min((a.end for a in answers if a.model == new), default=math.inf)
    late = [a for a in answers if a.model == old and a.start > first_new]
    assert late == [], f"{len(late)} requests sent after the switch answered by {old}"
    assert {a.model for a in answers} == {old, new}, "the switch did not happen under load"


def wait_status(client: Platform, status: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        deployment = dict(client.deployments.retrieve(OWNER, NAME)["deployment"])
        if deployment["status"] == status or time.monotonic() > deadline:
            assert deployment["status"] == status, deployment
            return deployment
        time.sleep(0.2)


def slug(project_model: tuple[str, str]) -> str:
    return f"{OWNER}/{project_model[0]}/{project_model[1]}"


def test_create_serves_model_a(
    stack: Stack, client: Platform, image: bytes, ledger: Ledger, references: dict[str, Any]
) -> None:
    created = client.deployments.create(
        OWNER, project=A[0], model=A[1], deployment=NAME, name="Dedicated A", region="us-central1", cpu=2
    )
    assert created["status"] == "creating" and created["deployment"] == NAME
    ready = wait_status(client, "ready")
    assert (ready["project"], ready["model"]) == A
    assert ready["serviceUrl"].endswith(f"/api/deployments/{OWNER}/{NAME}/predict")
    assert ready["resources"]["cpu"] == 2
    (model_dir,) = stack.repository.glob(f"dep~{OWNER}~{NAME}~*")  # its own Triton model, 2 instances
    config = httpx.get(f"{stack.settings.triton_http_url}/v2/models/{model_dir.name}/config").json()
    assert [g["count"] for g in config["instance_group"]] == [2]
    health = client.deployments.health(OWNER, NAME)
    assert health["healthy"] is True and health["latencyMs"] > 0
    answer = predict(client, image, ledger)
    assert answer.status == 200 and answer.model == slug(A)
    assert same_boxes(answer.boxes, references[slug(A)])
    listed = client.deployments.list(OWNER)
    assert [d["deployment"] for d in listed["deployments"]] == [NAME]


def test_replace_a_by_b_under_load_fails_no_request(
    client: Platform, image: bytes, ledger: Ledger, references: dict[str, Any]
) -> None:
    answers, updated = under_load(
        client,
        image,
        ledger,
        lambda: client.deployments.update(
            OWNER, NAME, body={"action": "replace", "project": B[0], "model": B[1]}
        ),
    )
    assert isinstance(updated, dict) and updated["status"] == "ready", updated
    assert_switched(answers, slug(A), slug(B), references)
    assert (wait_status(client, "ready")["model"]) == B[1]


@pytest.fixture(scope="module")
def broken_export(stack: Stack) -> Iterator[str]:
    """An export whose ONNX is corrupt: B's folder, its weights replaced by garbage (removed after
    the module: other tests share the repository)."""
    source = stack.repository / f"{OWNER}~{B[0]}~{B[1]}"
    target = stack.repository / f"{OWNER}~{BROKEN[0]}~{BROKEN[1]}"
    shutil.copytree(source, target, symlinks=True)
    config = target / "config.pbtxt"
    config.write_text(config.read_text().replace(source.name, target.name))
    for onnx in target.glob("*/model.onnx"):
        onnx.write_bytes(b"this is not an ONNX model" * 100)
    yield slug(BROKEN)
    shutil.rmtree(target)


def test_a_broken_replacement_leaves_the_deployment_serving(
    client: Platform, image: bytes, ledger: Ledger, references: dict[str, Any], broken_export: str
) -> None:
    answers, outcome = under_load(
        client,
        image,
        ledger,
        lambda: client.deployments.update(
            OWNER, NAME, body={"action": "replace", "project": BROKEN[0], "model": BROKEN[1]}
        ),
        requests=BROKEN_LOAD_REQUESTS,
    )
    assert isinstance(outcome, APIError), outcome
    assert outcome.status_code == 422
    assert broken_export in outcome.body and "failed to load or warm up" in outcome.body
    assert [a.status for a in answers if a.status != 200] == []
    assert {a.model for a in answers} == {slug(B)}
    assert all(same_boxes(a.boxes, references[slug(B)]) for a in answers)
    deployment = wait_status(client, "ready")
    assert deployment["model"] == B[1] and "failed to load" in deployment["statusMessage"]


@pytest.fixture(scope="module")
def replica(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second frontend on the same Triton and key store: it routes from the database only."""
    log = tmp_path_factory.mktemp("replica") / "frontend.log"
    process, base = stack.spawn_frontend(log, TRIDENT_DEPLOYMENT_FLUSH_S="0.5")
    try:
        yield base
    finally:
        runtime.stop(process)


def test_rollback_to_a_under_load_served_by_another_process(
    client: Platform,
    keys: dict[str, str],
    replica: str,
    image: bytes,
    ledger: Ledger,
    references: dict[str, Any],
) -> None:
    """Rollback is an update back to the model served before the last replace (A: the broken
    replace changed nothing). The load goes to a second frontend, which
    learns of the switch from the database: still no failed request and none of B after it."""
    with Platform(api_key=keys["owner"], base_url=replica, max_retries=0, timeout=300) as other:
        answers, updated = under_load(
            other,
            image,
            ledger,
            lambda: client.deployments.update(OWNER, NAME, body={"action": "rollback"}),
        )
    assert isinstance(updated, dict) and updated["status"] == "ready", updated
    assert_switched(answers, slug(B), slug(A), references)


def test_stop_answers_503_with_retry_after_and_start_serves_again(
    stack: Stack, client: Platform, keys: dict[str, str], image: bytes, ledger: Ledger
) -> None:
    assert client.deployments.update(OWNER, NAME, body={"action": "stop"})["status"] == "stopped"
    assert wait_status(client, "stopped")
    r = predict_raw(stack, keys, image, ledger)
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0, r.text
    assert predict(client, image, ledger).status == 503
    assert client.deployments.health(OWNER, NAME)["healthy"] is False

    assert client.deployments.update(OWNER, NAME, body={"action": "start"})["status"] == "ready"
    answer = predict(client, image, ledger)
    assert answer.status == 200 and answer.model == slug(A)


def test_the_endpoints_own_rate_limit_refuses_past_it(
    stack: Stack, client: Platform, keys: dict[str, str], image: bytes, ledger: Ledger
) -> None:
    """`rateLimit` bounds the endpoint whoever calls (the session key's plan allows a million)."""
    assert client.deployments.update(OWNER, NAME, body={"rateLimit": 3})["success"] is True
    assert dict(client.deployments.retrieve(OWNER, NAME)["deployment"])["rateLimit"] == 3

    def attempt(_: int) -> None:
        assert [predict(client, image, ledger).status for _ in range(5)] == [200, 200, 200, 429, 429]
        r = predict_raw(stack, keys, image, ledger)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text

    in_one_minute(attempt, shared_window=True)  # one deployment: one window, whichever key calls
    client.deployments.update(OWNER, NAME, body={"rateLimit": None})
    assert predict(client, image, ledger).status == 200


def bucket_bounds(latency_ms: float) -> tuple[float, float]:
    upper = next((b for b in LATENCY_BUCKETS_MS if latency_ms <= b), math.inf)
    lower = max((b for b in LATENCY_BUCKETS_MS if b < latency_ms), default=0)
    return lower, upper


def request_lines(client: Platform, **params: Any) -> list[dict[str, Any]]:
    entries = client.deployments.logs(OWNER, NAME, limit=10_000, **params)["entries"]
    return [json.loads(e["message"]) | {"severity": e["severity"]} for e in entries if "httpRequest" in e]


def test_metrics_count_exactly_the_requests_made(
    stack: Stack, client: Platform, ledger: Ledger, replica: str
) -> None:
    made = list(ledger.answers.values())
    failed = [a for a in made if a.status >= 500]
    assert len(made) > 2 * LOAD_REQUESTS + BROKEN_LOAD_REQUESTS and len(failed) == 2
    metrics = dict(client.deployments.metrics(OWNER, NAME, range="1h"))
    summary = metrics["summary"]
    assert summary["totalRequests"] == len(made)
    assert summary["errorCount"] == len(failed)
    assert sum(p["value"] for p in metrics["timeSeries"]["requests"]) == len(made)
    latencies = sorted(line["latencyMs"] for line in request_lines(client))
    median = latencies[math.ceil(len(latencies) / 2) - 1]
    lower, upper = bucket_bounds(median)
    assert lower <= summary["p50LatencyMs"] <= upper, (median, summary)
    for other in ("6h", "24h", "7d", "30d"):
        assert client.deployments.metrics(OWNER, NAME, range=other)["summary"]["totalRequests"] == len(made)
    exposition = httpx.get(f"{stack.base_url}/metrics").text + httpx.get(f"{replica}/metrics").text
    prometheus = sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("trident_deployment_requests_total{") and f'deployment="{OWNER}/{NAME}"' in line
    )
    assert prometheus == len(made)  # both processes' /metrics together


def test_logs_hold_each_request_once_never_a_key_and_filter_by_severity(
    client: Platform, keys: dict[str, str], ledger: Ledger
) -> None:
    lines = request_lines(client)
    ids = [line["requestId"] for line in lines]
    assert sorted(ids) == sorted(ledger.answers)  # each request exactly once
    for line in lines:
        made = ledger.answers[line["requestId"]]
        assert line["status"] == made.status and line["deployment"] == f"{OWNER}/{NAME}"
        assert line["latencyMs"] > 0
    everything = json.dumps(client.deployments.logs(OWNER, NAME, limit=10_000))
    assert all(key not in everything for key in keys.values())
    assert "tri_" not in everything

    errors = client.deployments.logs(OWNER, NAME, severity="ERROR", limit=10_000)["entries"]
    assert errors and {e["severity"] for e in errors} == {"ERROR"}
    failed = {a.request_id for a in ledger.answers.values() if a.status >= 500}
    assert {json.loads(e["message"]).get("requestId") for e in errors} - {None} == failed
    assert any("failed to load or warm up" in e["message"] for e in errors)  # the broken replace
    info = client.deployments.logs(OWNER, NAME, severity="INFO,WARNING", limit=10_000)["entries"]
    assert {e["severity"] for e in info} == {"INFO", "WARNING"} and len(info) > len(errors)
    refused = {a.request_id for a in ledger.answers.values() if a.status == 429}
    warnings = {json.loads(e["message"])["requestId"] for e in info if e["severity"] == "WARNING"}
    assert warnings == refused and len(refused) == 3


def test_another_users_key_sees_nothing(stack: Stack, keys: dict[str, str], image: bytes) -> None:
    calls: list[Callable[[Platform], object]] = [
        lambda c: c.deployments.list(OWNER),
        lambda c: c.deployments.create(
            OWNER, project=A[0], model=A[1], deployment="x", name="x", region="us-east1"
        ),
        lambda c: c.deployments.retrieve(OWNER, NAME),
        lambda c: c.deployments.update(OWNER, NAME, body={"action": "stop"}),
        lambda c: c.deployments.health(OWNER, NAME),
        lambda c: c.deployments.metrics(OWNER, NAME),
        lambda c: c.deployments.logs(OWNER, NAME),
        lambda c: c.deployments.predict(OWNER, NAME, body={"file": ("bus.jpg", image)}),
        lambda c: c.deployments.delete(OWNER, NAME),
    ]
    with Platform(api_key=keys["intruder"], base_url=stack.base_url, max_retries=0) as intruder:
        for call in calls:
            with pytest.raises(APIError) as refused:
                call(intruder)
            assert refused.value.status_code == 404, refused.value.body
            assert NAME not in refused.value.body or "not found" in refused.value.body.lower()
        assert intruder.deployments.list("intruder")["deployments"] == []


def ul(stack: Stack, key: str, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ULTRALYTICS_", "YOLO_"))}
    env |= {"ULTRALYTICS_PLATFORM_URL": stack.base_url, "ULTRALYTICS_API_KEY": key, "YOLO_OFFLINE": "1"}
    run = subprocess.run(
        [str(UL), "cloud", "deployments", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def test_ul_cloud_deployments_prints_them(stack: Stack, keys: dict[str, str]) -> None:
    key, who = keys["owner"], [f"owner={OWNER}", f"deployment={NAME}"]
    listed = ul(stack, key, "list", f"owner={OWNER}")
    assert [(d["deployment"], d["status"], d["model"]) for d in listed["deployments"]] == [
        (NAME, "ready", A[1])
    ]
    assert ul(stack, key, "retrieve", *who)["deployment"]["name"] == "Dedicated A"
    assert ul(stack, key, "health", *who)["healthy"] is True
    assert ul(stack, key, "metrics", *who, "range=1h")["summary"]["totalRequests"] > 2 * LOAD_REQUESTS
    logs = ul(stack, key, "logs", *who, "limit=3", "severity=INFO")["entries"]
    assert len(logs) == 3 and all(e["severity"] == "INFO" for e in logs)


def test_delete_removes_the_endpoint_and_its_model(
    stack: Stack, client: Platform, keys: dict[str, str]
) -> None:
    assert client.deployments.delete(OWNER, NAME)["success"] is True
    with pytest.raises(APIError) as gone:
        client.deployments.retrieve(OWNER, NAME)
    assert gone.value.status_code == 404
    assert not list(stack.repository.glob("dep~*"))


def test_the_audit_trail_names_every_change_and_its_key(stack: Stack, keys: dict[str, str]) -> None:
    store = KeyStore(stack.settings.key_store_url)
    trail = list(reversed(audit.entries(store.engine, user=OWNER, action="deployment.")))
    owner_key = parse_key(keys["owner"])
    assert {e.key_id for e in trail} == {owner_key}  # the intruder changed nothing
    assert [e.action.removeprefix("deployment.") for e in trail] == [
        "create", "deploy", "replace", "replace", "rollback", "stop", "start", "update", "update", "delete",
    ]  # fmt: skip
    assert trail[3].detail.startswith("failed: ") and slug(BROKEN) in trail[3].detail
    assert all("tri_" not in e.detail for e in trail)
