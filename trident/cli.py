"""The `trident` command: export models, run the local Triton, serve the API, or all of it at once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from core.settings import Settings, unknown_env
from pipeline.contract import IMGSZ_BOUNDS, PredictOptions
from trident.models import models_app
from trident.stopping import CHILD_STOP_S, FRONTEND_DRAIN_S, Stop, terminate
from trident.supervisor import Child

if TYPE_CHECKING:
    from store.keys import KeyStore
from core.slug import InvalidSlugError, Slug

if TYPE_CHECKING:
    from exporter.tensorrt import EngineOptions

EXAMPLES_SLUG = "demo/examples/detect"  # the model `trident run`'s curl line calls: it finds the bus
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _server_settings() -> Settings:
    """Settings for a command that starts a server, refusing `TRIDENT_` variables that match no setting:
    a misspelt one would otherwise be ignored and its default served without a word."""
    problems = unknown_env(os.environ)
    if problems:
        raise _fail("; ".join(problems) + " (the settings are listed in docs/operations/configuration.md)")
    return Settings()


@app.command()
def export(
    weights: Annotated[Path, typer.Argument(help="Ultralytics .pt checkpoint")],
    slug: Annotated[str, typer.Option(help="owner/project/model, as in the Platform's URL")],
    repository: Annotated[Path | None, typer.Option(help="Triton model repository")] = None,
    imgsz: Annotated[
        int, typer.Option(min=IMGSZ_BOUNDS[0], max=IMGSZ_BOUNDS[1], help="export image size")
    ] = PredictOptions.model_fields["imgsz"].default,
    dynamic: Annotated[
        bool, typer.Option("--dynamic/--static", help="dynamic H/W or fixed square input")
    ] = False,
    nms: Annotated[
        bool | None,
        typer.Option(
            "--nms/--no-nms",
            help="Ultralytics' nms flag: --nms puts NMS in the graph, --no-nms uses an NMS-free head "
            "(YOLO26, YOLOv10); unset exports the raw head and NMS runs in Trident",
        ),
    ] = None,
    max_batch: Annotated[int, typer.Option(min=1, max=256, help="Triton max_batch_size")] = 8,
    instances: Annotated[int, typer.Option(min=1, max=64, help="model instances in Triton")] = 1,
    ort_threads: Annotated[
        int, typer.Option(min=0, max=256, help="CPU: ONNX Runtime threads per instance (0: one per core)")
    ] = 0,
    ort_spinning: Annotated[
        bool,
        typer.Option(
            "--ort-spinning/--no-ort-spinning",
            help="CPU: idle ONNX Runtime threads spin (lower latency) or sleep (leave the cores to others)",
        ),
    ] = True,
    public: Annotated[bool, typer.Option("--public/--private", help="who may call it")] = False,
    format: Annotated[
        str, typer.Option(help="onnx, or engine: also a TensorRT plan (NVIDIA GPU + tensorrt package)")
    ] = "onnx",
    int8: Annotated[
        bool, typer.Option(help="engine: INT8 (with --calibration images) on top of FP16")
    ] = False,
    calibration: Annotated[Path | None, typer.Option(help="engine --int8: folder of images")] = None,
    examples: Annotated[
        Path | None,
        typer.Option(help="folder of up to 8 JPEG, PNG or WebP images the Test tab shows as examples"),
    ] = None,
) -> None:
    """Export WEIGHTS into the Triton repository as a new, parity-checked version."""
    settings = Settings()
    try:
        parsed = Slug.parse(slug)
    except InvalidSlugError as exc:
        raise _fail(str(exc)) from None
    if not weights.is_file():
        raise _fail(f"weights file not found: {weights}")
    engine = _engine_options(format, int8, calibration)
    dynamic = dynamic or engine is not None  # one plan for every batch size (and image size if dynamic)
    from exporter.errors import ExportError
    from exporter.export import ExportRequest, export_model
    from exporter.triton_config import ServingOptions

    request = ExportRequest(
        weights=weights,
        slug=parsed,
        repository=repository or settings.model_repository,
        imgsz=imgsz,
        dynamic=dynamic,
        nms=nms,
        visibility="public" if public else "private",
        examples=examples,
        options=ServingOptions(
            max_batch=max_batch,
            instances=instances,
            ort_threads=ort_threads,
            ort_spinning=None if ort_spinning else False,  # None: ONNX Runtime's default (spin)
            execution_env=str(settings.runtime_dir),
        ),
    )
    try:
        result = export_model(request, console)
        if engine is not None:
            from exporter.tensorrt import add_engine

            console.log(f"TensorRT plan: {add_engine(result.path, max_batch, engine)}")
    except ExportError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{parsed} -> {result.path}")


def _engine_options(fmt: str, int8: bool, calibration: Path | None) -> EngineOptions | None:
    """None for ONNX; for `engine`, stop before any work on a host that cannot build a plan."""
    if fmt not in ("onnx", "engine"):
        raise _fail(f"unknown --format {fmt!r}; use onnx or engine")
    if fmt == "onnx":
        if int8 or calibration:
            raise _fail("--int8 and --calibration apply to --format engine")
        return None
    from exporter.errors import ExportError
    from exporter.tensorrt import EngineOptions, require_engine_host

    if int8 and (calibration is None or not calibration.is_dir()):
        raise _fail("--int8 needs --calibration DIR, a folder of representative images")
    try:
        require_engine_host()
    except ExportError as exc:
        raise _fail(str(exc)) from None
    return EngineOptions(int8=int8, calibration=calibration)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes")] = None,
    metrics_dir_ready: Annotated[
        bool, typer.Option(hidden=True, help="`trident run`: keep its PROMETHEUS_MULTIPROC_DIR as it is")
    ] = False,
) -> None:
    """Serve the REST API (Triton must be running)."""
    import uvicorn

    from frontend.metrics_dir import prepare_multiprocess_dir

    settings = _server_settings()
    if not metrics_dir_ready:  # under `trident run` it holds the restart counts and earlier workers' counts
        prepare_multiprocess_dir(workers or settings.workers)  # metrics add up across worker processes
    uvicorn.run(
        "frontend.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_level="info",
        timeout_graceful_shutdown=FRONTEND_DRAIN_S,  # docs/operations/supervisor.md, "Stop timeouts"
    )


@app.command()
def worker(
    check: Annotated[
        bool,
        typer.Option(help="only check that a sandbox opens here: exit 0, or 1 saying why (a health check)"),
    ] = False,
) -> None:
    """Run the export jobs that uploads queue (each checkpoint opened only in the bubblewrap sandbox)
    until Ctrl-C or SIGTERM; several workers may share one database."""
    from exporter.sandbox import sandbox_problem
    from store.keys import KeyStore
    from store.uploads import UploadStore
    from trident.worker import Worker, limits

    settings = _server_settings()
    problem = sandbox_problem(limits(settings))
    if check:
        if problem:
            raise _fail(f"no sandbox opens here: {escape(problem)}")
        console.print("a sandbox opens here")
        return
    if problem:  # jobs will fail with this reason; say it now, not at the first upload
        console.print(f"[yellow]trident worker: no sandbox opens here, so exports fail: {escape(problem)}[/]")
    stop = Stop().install()
    store = UploadStore(KeyStore(settings.key_store_url).engine)
    console.print("trident worker: waiting for export jobs")
    Worker(settings, store).run(stop)
    raise typer.Exit(stop.exit_code())


@app.command()
def triton(
    install_only: Annotated[bool, typer.Option(help="install the runtime and exit")] = False,
) -> None:
    """Run the local Triton server (installs its runtime on first use) until Ctrl-C or SIGTERM
    (twice: at once)."""
    from trident import runtime

    settings = _server_settings()
    try:
        runtime.ensure_runtime(settings.runtime_dir)
        if install_only:
            console.print(f"Triton runtime ready in {settings.runtime_dir}")
            return
        stop = Stop().install()
        process = runtime.start_triton(settings, settings.model_repository)
    except runtime.TritonRuntimeError as exc:
        raise _fail(str(exc)) from None
    try:
        _announce_triton(settings, process, stop)
    finally:
        terminate(process, CHILD_STOP_S, stop)
        runtime.clean_leftovers(process.pid)  # its stubs and their shared memory, if it was killed
    raise typer.Exit(stop.exit_code() if stop.is_set() else process.returncode)


def _announce_triton(settings: Settings, process: subprocess.Popen[bytes], stop: Stop) -> None:
    """Say when Triton is ready (fail if it exits first, or is not ready in 120 s); return when it
    exits or a stop is asked for."""
    from trident import runtime

    deadline, ready = time.monotonic() + 120, False
    while process.poll() is None and not stop.wait(0.2):
        if ready:
            continue
        if runtime.health(settings) == "ready":
            console.print(f"Triton ready: gRPC {settings.triton_grpc_url}, HTTP {settings.triton_http_url}")
            ready = True
        elif time.monotonic() > deadline:
            raise _fail(f"Triton was not ready after 120 s ({settings.triton_http_url}/v2/health/ready)")
    if not ready and not stop.is_set():
        raise _fail(f"tritonserver exited with code {process.returncode} before it was ready")


demo_app = typer.Typer(help="The demo models: train them on generated data, export them, measure them.")


@demo_app.command("export")
def demo_export(
    repository: Annotated[Path | None, typer.Option(help="Triton model repository")] = None,
) -> None:
    """Export every committed demo model, public (what `trident run` does on an empty repository)."""
    from demo.models import available, weights, write_examples

    recipes = available()
    for recipe in recipes:
        with tempfile.TemporaryDirectory(prefix="trident-examples-") as folder:
            examples = write_examples(recipe, Path(folder))
            export(
                weights(recipe),
                slug=recipe.slug,
                repository=repository,
                imgsz=recipe.imgsz,
                public=True,
                examples=examples,
            )
    if not recipes:  # a checkout without trained weights still serves the documented JSON
        from exporter.demo import DEMO_SLUG, build_demo_weights

        untrained = build_demo_weights(Settings().data_dir / "demo" / "yolo11n-untrained.pt")
        export(untrained, slug=DEMO_SLUG, repository=repository, public=True)


@demo_app.command("train")
def demo_train(
    names: Annotated[list[str] | None, typer.Argument(help="recipes to train (default: all)")] = None,
) -> None:
    """Train demo models on the CPU (seeded, resumable; hours for all) and publish them to demo/models/."""
    from demo.models import publish
    from demo.train import RECIPES, train

    for name in names or list(RECIPES):
        if name not in RECIPES:
            raise _fail(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
        started = time.monotonic()
        path = publish(RECIPES[name], train(RECIPES[name], Settings().data_dir / "demo"))
        console.print(f"{name}: {path} ({(time.monotonic() - started) / 60:.0f} min)")


@demo_app.command("evaluate")
def demo_evaluate(
    url: Annotated[
        str | None, typer.Option(help="Trident's base URL (default: this machine's settings)")
    ] = None,
    key: Annotated[str | None, typer.Option(help="API key (default: the dev key of `trident run`)")] = None,
    limit: Annotated[int | None, typer.Option(help="score only the first N test images")] = None,
    names: Annotated[
        list[str] | None, typer.Argument(help="recipes to score (default: all committed)")
    ] = None,
) -> None:
    """Score the demo models on their held-out test split through the REST API and in process."""
    from demo.report import evaluate_models

    settings = Settings()
    base = url or f"http://{settings.host}:{settings.port}"
    evaluate_models(base, key or _dev_key(settings), names, limit, settings.data_dir / "demo")


keys_app = typer.Typer(help="API keys: create, list, revoke (the key is shown once, never stored).")
users_app = typer.Typer(help="Users and their plans.")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(demo_app, name="demo")
app.add_typer(models_app, name="models")


def _store() -> KeyStore:
    from store.keys import KeyStore

    return KeyStore(Settings().key_store_url)


def _check_plan(plan: str) -> None:
    plans = Settings().plans
    if plan not in plans:
        raise _fail(f"unknown plan {plan!r}; configured plans: {', '.join(sorted(plans))}")


DURATION_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` -> a timedelta (a key's lifetime)."""
    value, unit = text[:-1], text[-1:].lower()
    if unit not in DURATION_UNITS or not value.isdigit() or int(value) == 0:
        raise _fail(f"--expires-in {text!r}: use a positive whole number and m, h, d or w (e.g. 30d)")
    return timedelta(seconds=int(value) * DURATION_UNITS[unit])


def _when(moment: datetime | None, never: str = "never") -> str:
    return f"{moment:%Y-%m-%d %H:%M}Z" if moment else never


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="who the key belongs to (owner part of their model slugs)")],
    plan: Annotated[
        str, typer.Option(help="plan for a new user (free, pro, or one from TRIDENT_PLANS)")
    ] = "free",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="predict (the default), deployments, admin, streams or export; repeat for several"),
    ] = None,
    name: Annotated[str, typer.Option(help="a label shown by `keys list` and GET /api/api-keys")] = "",
    expires_in: Annotated[
        str | None, typer.Option(help="lifetime such as 30d, 12h, 2w (default: never expires)")
    ] = None,
) -> None:
    """Create a key; it is printed once, on the last line, and only its hash is kept."""
    from store.audit import Actor
    from store.keys import parse_scopes

    _check_plan(plan)
    lifetime = _duration(expires_in) if expires_in else None
    try:
        scopes = parse_scopes(scope or [])
    except ValueError as exc:
        raise _fail(str(exc)) from None
    key, key_id = _store().create_key(
        user, plan, name=name, scopes=scopes, expires_in=lifetime, actor=Actor.cli()
    )
    console.print(f"created key {key_id} for {user}; store it now, it cannot be shown again:")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Key ids, names, users, plans, scopes, expiry, last use and status (never the keys).

    Last use reaches the database at most once a minute per key, so it can lag by that much."""
    from store.keys import SCOPES

    store = _store()
    now = store.clock()
    for k in store.list_keys():
        if k.revoked_at:
            status = f"revoked {_when(k.revoked_at)}"
        else:
            status = "expired" if k.expired(now) else "active"
        scopes = ",".join(s for s in SCOPES if s in k.scopes)
        typer.echo(
            f"{k.key_id}  {k.name or '-'}  {k.user}  {k.plan}  scopes {scopes}  "
            f"created {_when(k.created_at)}  expires {_when(k.expires_at)}  "
            f"last used {_when(k.last_used_at)}  {status}"
        )


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id shown by `keys list`")]) -> None:
    """Revoke a key at once (the next request with it, or with a browser token made from it, gets 401)."""
    from store.audit import Actor

    if not _store().revoke(key_id, actor=Actor.cli()):
        raise _fail(f"no active key {key_id}")
    typer.echo(f"revoked {key_id}")


@keys_app.command("scopes")
def keys_scopes(
    key_id: Annotated[str, typer.Argument(help="the key id shown by `keys list`")],
    scope: Annotated[list[str], typer.Option(help="the key's new scopes; repeat for several")],
) -> None:
    """Replace an active key's scopes (audited)."""
    from store.audit import Actor

    try:
        changed = _store().set_scopes(key_id, scope, actor=Actor.cli())
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not changed:
        raise _fail(f"no active key {key_id}")
    typer.echo(f"{key_id}: {','.join(scope)}")


@users_app.command("set-plan")
def users_set_plan(name: str, plan: str) -> None:
    """Create a user or move it to another plan (audited)."""
    from store.audit import Actor

    _check_plan(plan)
    _store().add_user(name, plan, actor=Actor.cli())
    typer.echo(f"{name}: {plan}")


@app.command("audit")
def audit_list(
    user: Annotated[str | None, typer.Option(help="only changes to this user's keys and plan")] = None,
    action: Annotated[
        str | None,
        typer.Option(
            help="key.create, key.revoke, key.scopes, user.plan, deployment.*; a prefix such as `key.` too"
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many entries")] = 100,
) -> None:
    """The audit trail, newest first: when, action, user, key, who, from where, what changed."""
    from store import audit

    for e in audit.entries(_store().engine, user=user, action=action, limit=limit):
        typer.echo(
            f"{e.at:%Y-%m-%d %H:%M:%S}Z  {e.action}  {e.user}  {e.key_id or '-'}  "
            f"by {e.actor} from {e.source}  {e.detail}".rstrip()
        )


def _dev_key(settings: Settings) -> str:
    """The local stack's key (user `dev`, plan `pro`), kept in the data folder for the next run."""
    from store.keys import KeyStore

    path = settings.data_dir / "dev-api-key"
    store = KeyStore(settings.key_store_url)
    if path.exists() and store.verify(path.read_text().strip()) is not None:
        return path.read_text().strip()
    key, _ = store.create_key("dev", "pro")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _has_models(repository: Path) -> bool:
    return repository.is_dir() and any((p / "config.pbtxt").is_file() for p in repository.iterdir())


def _needs_demo(repository: Path) -> bool:
    """No repository, or an empty folder; a path that is not a folder is Triton's to report."""
    return not repository.exists() or (repository.is_dir() and not _has_models(repository))


@app.command()
def run() -> None:
    """The whole local stack, kept up: Triton, a demo model if there is none, and the API on TRIDENT_PORT.

    Triton or the frontend exiting unexpectedly is restarted (see `trident.supervisor`); Ctrl-C or
    SIGTERM stops both, the frontend first so requests in flight finish; a second one kills them at
    once and exits non-zero (see `trident.stopping`)."""
    from trident import runtime
    from trident.supervisor import GaveUp, RestartPolicy, Supervisor

    settings = _server_settings()
    key = _dev_key(settings)
    me = [sys.executable, "-m", "trident"]
    try:
        runtime.ensure_runtime(settings.runtime_dir)
        if _needs_demo(settings.model_repository):
            console.print("no models yet: exporting the demo models")
            subprocess.run([*me, "demo", "export"], check=True)
        triton_command, triton_env = runtime.launch(settings, settings.model_repository)
    except (runtime.TritonRuntimeError, subprocess.CalledProcessError) as exc:
        raise _fail(str(exc)) from None
    stop = Stop().install()  # from here on a signal only asks; what was started is then stopped
    created_metrics_dir = _shared_metrics_dir(settings.workers)
    from frontend.metrics import PROCESS_RESTARTS, SUPERVISED_PROCESSES  # once the directory is set

    for name in SUPERVISED_PROCESSES:
        PROCESS_RESTARTS.labels(name)  # 0 from the start, not absent
    logs = settings.data_dir.resolve() / "logs"
    base = f"http://{settings.host}:{settings.port}"
    children = [
        Child(
            "tritonserver",
            triton_command,
            logs / "tritonserver.log",
            env=triton_env,
            probe=partial(_triton_serving, settings),
            cleanup=runtime.clean_leftovers,
            start_timeout_s=settings.triton_start_timeout_s,
            stop_timeout_s=CHILD_STOP_S,  # tritonserver's own exit timeout is TRITON_EXIT_S
        ),
        Child(
            "frontend",
            [*me, "serve", "--metrics-dir-ready"],
            logs / "frontend.log",
            probe=partial(_http_ok, f"{base}/livez"),
            cleanup=_frontend_leftovers,
            stop_timeout_s=CHILD_STOP_S,  # uvicorn drains for up to FRONTEND_DRAIN_S
        ),
        # export jobs of uploaded checkpoints; a job it is killed in is taken again once it is back
        Child("worker", [*me, "worker"], logs / "worker.log", stop_timeout_s=CHILD_STOP_S),
    ]
    policy = RestartPolicy(settings.restart_limit, settings.restart_window_s, settings.restart_backoff_max_s)
    supervisor = Supervisor(
        children,
        policy,
        say=_say,
        on_restart=lambda name: PROCESS_RESTARTS.labels(name).inc(),
    )
    threading.Thread(target=_announce, args=(settings, key, stop), daemon=True).start()
    try:
        supervisor.run(stop)
    except GaveUp as exc:
        raise _fail(str(exc)) from None
    finally:
        if created_metrics_dir is not None:
            shutil.rmtree(created_metrics_dir, ignore_errors=True)
    _say("stopped", prefix="")
    raise typer.Exit(stop.exit_code())


def _say(line: str, prefix: str = "trident run: ") -> None:
    """One line on stderr; a terminal that is gone (a stop on SIGHUP) must not stop the stopping."""
    with contextlib.suppress(OSError):
        console.print(f"{prefix}{line}", highlight=False, soft_wrap=True)


def _shared_metrics_dir(workers: int) -> Path | None:
    """Give this process and the frontend's workers one PROMETHEUS_MULTIPROC_DIR, kept across frontend
    restarts: the restart counter this process keeps then shows on the frontend's `/metrics`.

    Returns the directory if it is a temporary one of ours (to remove at the end)."""
    from frontend.metrics_dir import MULTIPROC_ENV, prepare_multiprocess_dir

    ours = None
    if not os.environ.get(MULTIPROC_ENV):
        ours = Path(tempfile.mkdtemp(prefix="trident-metrics-"))
        os.environ[MULTIPROC_ENV] = str(ours)
    prepare_multiprocess_dir(workers)
    return ours


def _triton_serving(settings: Settings) -> bool:
    """The supervisor's probe of a starting Triton: ready yet? A Triton that is not live never will be."""
    from trident import runtime
    from trident.supervisor import StartFailed

    state = runtime.health(settings)
    if state == "broken":
        raise StartFailed("reports it is not live (a startup error, such as an unusable model repository)")
    return state == "ready"


def _frontend_leftovers(pid: int) -> None:
    """After the frontend is gone: its uvicorn workers, their live gauges and their shared memory."""
    from prometheus_client import multiprocess

    from frontend.serving.shm import PREFIX as SHM_PREFIX
    from trident.supervisor import kill_group, remove_shm, shm_named, wait_gone

    pids = [pid, *kill_group(pid)]
    wait_gone(pids, timeout_s=5.0)
    for dead in pids:
        multiprocess.mark_process_dead(dead)  # type: ignore[no-untyped-call]
    remove_shm(name for dead in pids for name in shm_named(f"{SHM_PREFIX}{dead}-"))


def _announce(settings: Settings, key: str, stop: Stop) -> None:
    """Once the API is ready (the first time), print where it is, the key and a curl line to paste."""
    base = f"http://{settings.host}:{settings.port}"
    while not _http_ok(f"{base}/readyz"):
        if stop.wait(0.3):
            return
    slugs = _listed_models(base, key, stop)
    slug = EXAMPLES_SLUG if EXAMPLES_SLUG in slugs else (slugs or ["owner/project/model"])[0]
    console.print(f"\n[bold green]Trident is up[/] on {base}  (docs: {base}/docs)")
    console.print(f"API key: {key}")
    typer.echo(
        f"curl -s -H 'Authorization: Bearer {key}' -F file=@{_example_image()} -F conf=0.25 "
        f"{base}/api/models/{slug}/predict"
    )


def _listed_models(base: str, key: str, stop: Stop, wait_s: float = 15) -> list[str]:
    """The models the key can call, once the frontend lists any: Triton and the frontend start
    together, so the frontend's first read of Triton's index may come before Triton served it."""
    deadline = time.monotonic() + wait_s
    slugs: list[str] = []
    while not slugs and time.monotonic() < deadline and not stop.wait(0.3):
        try:
            answer = httpx.get(f"{base}/api/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            slugs = [m["slug"] for m in answer.json()["models"]]
        except (httpx.HTTPError, ValueError, KeyError):
            slugs = []
    return slugs


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _example_image() -> str:
    """Ultralytics' bus.jpg, located without importing ultralytics (and torch)."""
    from core.assets import ultralytics_assets

    assets = ultralytics_assets()
    return "bus.jpg" if assets is None else str(assets / "bus.jpg")
