"""The compose stack as a user runs it: predicts through the proxy, the exporter image, keys and
limits across replicas, Triton killed, users and metrics, slow clients (issue 26's six checks)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from ultralytics_platform import Platform

from tests.containers.conftest import TINY, UP, Compose, Engine, Images, until_200
from tests.helpers.podman import ROOT, Builder, logs
from tests.helpers.stack import Stack, in_one_minute, post_predict
from tests.helpers.uploads import crafted, predict, ul, upload, wait_export

SLUG = "test/coco/yolo11n"
pytestmark = pytest.mark.timeout(1800)  # the first test builds the images: minutes without the cache


def create_key(compose: Compose, user: str, plan: str, *scopes: str) -> str:
    """`compose exec frontend trident keys create`: the key is the last line it prints."""
    command = ["trident", "keys", "create", "--user", user, "--plan", plan]
    command += [arg for scope in scopes for arg in ("--scope", scope)]
    out = compose.run("exec", "-T", "frontend", *command)
    return out.stdout.strip().splitlines()[-1]


def reload_proxy(engine: Engine, proxy: str, timeout_s: float = 60) -> None:
    """`nginx -s reload` in the proxy once it succeeds: nginx resolves `frontend` as it loads its
    configuration, and a container just started may reach the network's DNS a moment after
    `podman start` returns ("host not found in upstream"; the failed reload keeps the old
    addresses, so every later check would meet a 502)."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run(
            ["podman", "exec", proxy, "nginx", "-s", "reload"], env=engine.env, capture_output=True, text=True
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the proxy did not reload in {timeout_s:g} s: {done.stderr[-2000:]}")
        time.sleep(0.5)


def answers(base_url: str, key: str, slug: str, images: list[Path]) -> list[dict[str, object]]:
    """Each image's predict answer minus its timings."""
    out = []
    for image in images:
        r = post_predict(base_url, key, slug, image, answer_format="seed")
        assert r.status_code == 200, r.text
        out.append({k: v for k, v in r.json().items() if k != "speed"})
    return out


def assert_same_as_make_run(compose: Compose, stack: Stack, key: str, images: list[Path]) -> None:
    """Check 1: the proxy's answers equal the local stack's (`make run`), hundreds of instances."""
    ours = answers(compose.url, key, SLUG, images)
    theirs = answers(stack.base_url, stack.api_key, SLUG, images)
    assert sum(len(a["predictions"]) for a in theirs) >= 100  # type: ignore[arg-type]
    assert ours == theirs


def test_predict_through_the_proxy_equals_make_run(
    compose: Compose, stack: Stack, all_images: list[Path]
) -> None:
    key = create_key(compose, "alice", "pro")
    assert_same_as_make_run(compose, stack, key, all_images)


def test_an_image_without_pipeline_fails_check_1(
    engine: Engine, images: Images, compose: Compose, stack: Stack, all_images: list[Path], tmp_path: Path
) -> None:
    """The negative control: a frontend image without pipeline/ (as the Dockerfiles that copied
    packages by name made it) serves in place of the stack's, and check 1 fails. Such an image no
    longer builds (the build imports what serving imports, for its bytecode), so the control
    removes the package from the stack's own image after the build."""
    ignore = tmp_path / "dockerignore"
    ignore.write_text((ROOT / ".dockerignore").read_text() + "pipeline\n")
    builder = Builder(engine.env, images.base, engine.pip)
    with pytest.raises(pytest.fail.Exception, match="No module named 'pipeline'"):
        builder.build("docker/frontend.Dockerfile", "frontend-no-pipeline", ignore)
    broken = builder.build_text(
        f"FROM {images.frontend}\nUSER 0\n"
        "RUN rm -r /opt/venv/lib/python3.11/site-packages/pipeline\nUSER 10001\n",
        "frontend-without-pipeline",
    )
    key = create_key(compose, "bob", "pro")
    replicas, (proxy,) = compose.ids("frontend"), compose.ids("proxy")
    name = f"{compose.project}_frontend_broken"
    try:
        engine.podman("stop", "-t", "5", *replicas)
        engine.podman(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            f"{compose.project}_default",
            "--network-alias",
            "frontend",
            "-v",
            f"{compose.project}_trident-data:/data",
            "-e",
            "TRIDENT_TRITON_HOST=triton",
            broken,
        )
        # best effort: the broken container may exit (and leave the DNS) before nginx resolves it
        engine.podman("exec", proxy, "nginx", "-s", "reload", check=False)
        engine.podman("wait", name, timeout=60)  # it exits at its first import
        assert "No module named 'pipeline'" in logs(engine.env, name)
        with pytest.raises((AssertionError, httpx.TransportError)):
            assert_same_as_make_run(compose, stack, key, all_images)
    finally:
        engine.podman("rm", "-f", "-t", "0", name, check=False)
        engine.podman("start", *replicas)
        reload_proxy(engine, proxy)  # the replicas' addresses, new or not
        compose.wait_ready()
    assert_same_as_make_run(compose, stack, key, all_images)  # the stack's own image, back


def test_the_exporter_image_exports_and_the_running_frontend_serves_it(
    compose: Compose, yolo11n_pt: Path, stack: Stack, bus: Path
) -> None:
    """Check 2: `compose run --rm exporter export ...` writes a model folder into the repository;
    the frontend that was running all along serves it, no restart."""
    started = {c["Id"]: c["StartedAt"] for c in compose.containers("frontend")}
    (compose.weights / "best.pt").write_bytes(yolo11n_pt.read_bytes())
    (compose.weights / "best.pt").chmod(0o644)
    done = compose.run(
        "run",
        "--rm",
        "exporter",
        "export",
        "/weights/best.pt",
        "--slug",
        "acme/parking/yolo11n",
        "--public",
        timeout=900,
        profiles="cpu,tools",
    )
    assert (compose.repository / "acme~parking~yolo11n").is_dir(), done.stdout[-2000:] + done.stderr[-2000:]
    assert compose.containers("exporter") == []  # --rm
    key = create_key(compose, "carol", "pro")
    until_200(lambda: post_predict(compose.url, key, "acme/parking/yolo11n", bus), 120)
    answer = post_predict(compose.url, key, "acme/parking/yolo11n", bus, answer_format="seed").json()
    assert len(answer["predictions"]) > 0
    assert {c["Id"]: c["StartedAt"] for c in compose.containers("frontend")} == started


def test_ul_cloud_predict_through_the_proxy_exports_in_the_worker_sandbox(
    compose: Compose, images: Images, yolo11n_pt: Path, bus: Path, tmp_path: Path
) -> None:
    """The worker service: `ul cloud predict model=best.pt source=bus.jpg`, the SDK's own CLI,
    through the proxy of a stack answering the Platform's contract (`TRIDENT_API_FORMAT=platform`):
    it uploads the weights, the worker container exports them in its bubblewrap sandbox, and `ul`
    predicts and saves the results; the model then answers with the boxes of the stack's own export
    of the same checkpoint. A checkpoint that reads the key store as it is unpickled fails its job:
    the key store is not in the sandbox, though the worker beside it reads it (so the path is right
    and the sandbox is what hid it). Each sandbox's processes are gone after its job, none left to
    the container's pid 1. The service is healthy (`trident worker --check`), and the same image in
    an engine's default confinement is not, with bubblewrap's reason: `systempaths=unconfined` is
    needed."""
    key = create_key(compose, "erin", "pro", "predict", "export")
    best = tmp_path / "best.pt"
    best.write_bytes(yolo11n_pt.read_bytes())
    output = ul(compose.url, key, tmp_path, "predict", f"model={best}", f"source={bus}")
    model = re.search(r"Model: ul://(\S+)", output)
    assert model and re.search(r"Results saved to .*runs", output), f"{output[-2000:]}\n{compose.logs()}"
    with Platform(api_key=key, base_url=compose.url, max_retries=0) as client:
        ours, theirs = (predict(client, slug, bus, conf=0.02) for slug in (model[1], SLUG))
        assert len(theirs) == 300 and ours == theirs

        code = "open('/data/trident.db', 'rb').read(); raise RuntimeError('READ THE KEY STORE')"
        failed = wait_export(
            client, upload(client, "uploads", "evil", crafted(tmp_path / "evil.pt", code)), 300
        )
    assert failed["status"] == "failed" and "No such file" in failed["error"]["message"], failed
    assert "READ THE KEY STORE" not in failed["error"]["message"]
    worker = compose.ids("worker")[0]
    healthy = subprocess.run(
        ["podman", "healthcheck", "run", worker], env=compose.engine.env, capture_output=True
    )
    assert healthy.returncode == 0, healthy  # `trident worker --check` in the service's confinement
    # the same image in an engine's default confinement (its /proc masked): unhealthy, saying why
    refused = subprocess.run(
        ["podman", "run", "--rm", images.exporter, "worker", "--check"],
        env=compose.engine.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "Can't mount proc" in refused.stderr, refused
    left = compose.engine.podman("top", worker, "hpid", "args")
    assert "[bwrap]" not in left and "?" not in left.split(), left  # no sandbox left a zombie
    compose.exec(
        "worker", "python", "-c", "assert open('/data/trident.db', 'rb').read(16) == b'SQLite format 3\\0'"
    )


def test_keys_survive_down_and_up_and_the_minute_limit_holds_across_replicas(
    compose: Compose, bus: Path
) -> None:
    """Check 3: a key made with `compose exec frontend trident keys create` works after `compose
    down` and `up` (the volume); a free key's 10 a minute hold exactly across the two replicas,
    each called directly, through the one Redis."""
    kept = create_key(compose, "dave", "pro")
    compose.run("down", "-t", "10")
    assert compose.containers() == []
    compose.up()
    compose.wait_ready()
    assert post_predict(compose.url, kept, SLUG, TINY).status_code == 200

    replicas = [f"http://{compose.address(c)}:8080" for c in compose.ids("frontend")]
    assert len(replicas) == 2

    def spend(n: int) -> None:
        key = create_key(compose, f"erin{n}", "free")
        statuses = [post_predict(replicas[i % 2], key, SLUG, TINY).status_code for i in range(10)]
        assert statuses == [200] * 10
        over = [post_predict(url, key, SLUG, TINY) for url in replicas]
        assert [r.status_code for r in over] == [429, 429]
        assert all(int(r.headers["Retry-After"]) > 0 for r in over)

    in_one_minute(spend)


def test_triton_killed_answers_503_then_200_after_the_restart_policy(compose: Compose) -> None:
    """Check 4: `kill -9` of tritonserver in its container (a crash: nobody stops the container);
    predicts answer 503 with Retry-After, then 200 once the restart policy brought it back."""
    key = create_key(compose, "frank", "pro")
    assert post_predict(compose.url, key, SLUG, TINY).status_code == 200
    (triton,) = compose.ids("triton-cpu")
    top = compose.engine.podman("top", triton, "hpid", "args").splitlines()[1:]
    (pid,) = [int(line.split()[0]) for line in top if "bin/tritonserver" in line]
    os.kill(pid, signal.SIGKILL)
    seen: list[int] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        r = post_predict(compose.url, key, SLUG, TINY)
        seen.append(r.status_code)
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) > 0
        if r.status_code == 200 and 503 in seen:
            break
        assert r.status_code in (200, 503), r.text
        time.sleep(0.5)
    assert 503 in seen and seen[-1] == 200, (seen, compose.logs())
    restarts = json.loads(compose.engine.podman("inspect", triton))[0]["RestartCount"]
    assert restarts >= 1


def test_a_stopped_replica_costs_no_request_through_the_proxy(compose: Compose, engine: Engine) -> None:
    """With one of the two replicas stopped (a crash, a rolling restart), every predict through the
    proxy answers 200: nginx passes a predict it could not hand to a replica on to the other one
    (it has sent none of the body, so nothing runs twice), and leaves the stopped one out a while."""
    key = create_key(compose, "gina", "pro")
    stopped, (proxy,) = compose.ids("frontend")[0], compose.ids("proxy")
    engine.podman("stop", "-t", "10", stopped)
    try:
        statuses = [post_predict(compose.url, key, SLUG, TINY).status_code for _ in range(20)]
    finally:
        engine.podman("start", stopped)
        reload_proxy(engine, proxy)  # its address may be new
        compose.wait_ready()
    assert statuses == [200] * 20


def test_every_container_runs_as_non_root_and_prometheus_scrapes_every_target(compose: Compose) -> None:
    """Check 5: no process of the stack runs as root; Prometheus has every target up and holds
    Trident's and Triton's series."""
    running = [c for c in compose.containers() if c["State"] == "running"]
    assert {str(c["Labels"]["com.docker.compose.service"]) for c in running} == set(UP)  # type: ignore[index]
    for container in running:  # every process, read from the host's /proc (the images have no ps)
        top = compose.engine.podman("top", str(container["Id"]), "hpid", "args")
        pids = [line.split()[0] for line in top.splitlines()[1:]]
        assert all(pid.isdigit() for pid in pids), (container["Names"], top)
        uids = [Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[:2] for pid in pids]
        assert uids and all("0" not in ids for ids in uids), (container["Names"], uids)
    probe = "import importlib.util as u; print([m for m in ('torch', 'ultralytics') if u.find_spec(m)])"
    assert compose.exec("frontend", "python", "-c", probe).strip() == "[]"  # the slim image
    prometheus = f"http://127.0.0.1:{compose.prometheus_port}/api/v1"
    deadline, targets = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        targets = httpx.get(f"{prometheus}/targets", timeout=5).json()["data"]["activeTargets"]
        if targets and all(t["health"] == "up" for t in targets):
            break
        time.sleep(2)
    assert {t["labels"]["job"] for t in targets} == {"trident-frontend", "triton"}
    assert all(t["health"] == "up" for t in targets), targets
    for query in ('trident_requests_total{status="200"}', "nv_inference_request_success"):
        result = []
        while not result and time.monotonic() < deadline + 30:  # the next scrape (every 15 s) holds them
            result = httpx.get(f"{prometheus}/query", params={"query": query}, timeout=5).json()["data"][
                "result"
            ]
            time.sleep(0 if result else 2)
        assert result, query


def open_trickle(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: trident\r\n")
    s.setblocking(False)
    return s


def closed(s: socket.socket) -> bool:
    """Whether the server is done with `s`: end of stream, an answer or a reset."""
    try:
        s.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


def trickle(sockets: list[socket.socket], seconds: float) -> list[float | None]:
    """A header line every 5 s on each socket for `seconds`; when each was closed (None: open)."""
    start, line = time.monotonic(), 0
    when: list[float | None] = [None] * len(sockets)
    while time.monotonic() - start < seconds:
        for i, s in enumerate(sockets):
            if when[i] is None and closed(s):
                when[i] = time.monotonic() - start
        if (time.monotonic() - start) // 5 >= line:
            line += 1
            for i, s in enumerate(sockets):
                if when[i] is None:
                    try:
                        s.send(f"X-Slow-{line}: 1\r\n".encode())
                    except OSError:
                        when[i] = time.monotonic() - start
        time.sleep(0.1)
    return when


def predict_seconds(url: str, key: str, image: Path, n: int = 5) -> float:
    times = []
    for _ in range(n):
        start = time.monotonic()
        assert post_predict(url, key, SLUG, image).status_code == 200
        times.append(time.monotonic() - start)
    return statistics.median(times)


def test_slow_clients_are_closed_by_the_proxy_and_predicts_keep_their_speed(
    compose: Compose, bus: Path
) -> None:
    """Check 6: 200 connections trickling a header line every 5 s are closed by the proxy within
    its client_header_timeout (10 s), while a predict answers at its usual speed; uvicorn itself,
    called directly, still holds the same clients open (the proxy is what closes them)."""
    key = create_key(compose, "grace", "pro")
    usual = predict_seconds(compose.url, key, bus)
    proxied = [open_trickle("127.0.0.1", compose.http_port) for _ in range(200)]
    direct = [open_trickle(compose.address(compose.ids("frontend")[0]), 8080) for _ in range(5)]
    try:
        during = predict_seconds(compose.url, key, bus)
        when = trickle(proxied + direct, 22)
    finally:
        for s in proxied + direct:
            s.close()
    assert all(t is not None and t <= 12 for t in when[:200]), sorted(t or 99 for t in when[:200])[-5:]
    assert when[200:] == [None] * 5
    assert during <= usual * 1.5 + 0.2, (usual, during)


def raw_post(host: str, port: int, length: int) -> bytes:
    """The answer to a POST announcing `length` body bytes, none of them sent yet."""
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(
            f"POST /api/models/{SLUG}/predict HTTP/1.1\r\nHost: trident\r\nContent-Length: {length}\r\n"
            "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while data := s.recv(65536):
            answer += data
        return answer


def test_the_proxy_body_limit_is_101_mb(compose: Compose) -> None:
    """At nginx's limit (101 MiB) the request reaches the API, whose own limit answers (its JSON
    error, in either contract); one byte past it, nginx answers 413 itself before any body is read."""
    limit = 101 << 20
    at = raw_post("127.0.0.1", compose.http_port, limit)
    assert at.startswith(b"HTTP/1.1 413") and b"application/json" in at and b"Payload too large" in at, at[
        :500
    ]
    past = raw_post("127.0.0.1", compose.http_port, limit + 1)
    assert past.startswith(b"HTTP/1.1 413") and b"nginx" in past and b"Payload too large" not in past, past[
        :500
    ]


def test_a_stalled_body_is_closed_by_the_proxy(compose: Compose) -> None:
    """client_body_timeout: a client that stops sending its body (to an API waiting for it, the
    key being good) is dropped after 30 s."""
    key = create_key(compose, "heidi", "pro")
    s = socket.create_connection(("127.0.0.1", compose.http_port), timeout=5)
    s.sendall(
        f"POST /api/models/{SLUG}/predict HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000\r\n\r\n--x\r\n".encode()
    )
    s.setblocking(False)
    start = time.monotonic()
    while not closed(s):
        assert time.monotonic() - start < 40, "the proxy held a stalled body past its timeout"
        time.sleep(0.2)
    s.close()
    assert time.monotonic() - start >= 25


def test_the_frontend_sees_the_client_address_and_believes_x_forwarded_for_only_from_the_proxy(
    compose: Compose,
) -> None:
    """Through the proxy the frontend logs the client's own address, never the proxy's or a forged
    X-Forwarded-For; called directly it ignores that header."""
    proxy = compose.ids("proxy")[0]
    replicas = compose.ids("frontend")
    gateway = json.loads(compose.engine.podman("network", "inspect", f"{compose.project}_default"))[0]
    client = str(gateway["subnets"][0]["gateway"])  # the host, as the containers see it
    forged = {"X-Forwarded-For": "203.0.113.9"}
    through = f"/livez?through={time.time_ns()}"
    direct = f"/livez?direct={time.time_ns()}"
    assert httpx.get(f"http://{compose.address(proxy)}:8080{through}", headers=forged).status_code == 200
    assert httpx.get(f"http://{compose.address(replicas[0])}:8080{direct}", headers=forged).status_code == 200
    logs = "".join(compose.engine.podman("logs", r) for r in replicas).splitlines()
    seen = {marker: [line for line in logs if marker in line] for marker in (through, direct)}
    assert all(len(lines) == 1 for lines in seen.values()), seen
    for lines in seen.values():
        assert f"{client}:" in lines[0] and "203.0.113.9" not in lines[0], lines
        assert compose.proxy_address not in lines[0]
