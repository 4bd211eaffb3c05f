"""FastAPI dependencies: what a handler needs, declared in its signature (`Annotated[..., Depends]`).

The app's lifespan builds one `Services` per worker; these functions are the only readers of
`app.state`. Each is `async` even when it does not await: FastAPI runs a plain `def` dependency
in its thread pool, a thread hop (and a wait for the GIL) per dependency per request.
Order in a signature is order of resolution: the caller first (a failed key spends no quota and
learns nothing about models), then the quota, then the model, then the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from starlette.requests import Request

from core.settings import Settings
from frontend.deployments.deployer import Deployer
from frontend.deployments.lifecycle import Lifecycle
from frontend.errors import Forbidden, RateLimited, ServingError, Unauthorized
from frontend.formats import resolve_format
from frontend.guards.auth import authenticate
from frontend.guards.ratelimit import DAY_S, Decision, FailedAuthLimiter, Plan, RateLimiter
from frontend.metrics import record_rate_limited
from frontend.serving.catalog import Catalog
from frontend.serving.engine import Engine
from frontend.streams.runner import Streams
from pipeline.contract import ApiFormat
from pipeline.formats import Format
from store.deployments import DeploymentStore, Telemetry
from store.keys import KeyStore, Principal
from store.track_sessions import TrackSessions
from store.uploads import UploadStore
from store.usage import UsageLog


@dataclass(frozen=True)
class Services:
    """Everything a worker holds open for its lifetime."""

    engine: Engine
    keys: KeyStore
    limiter: RateLimiter
    auth_failures: FailedAuthLimiter
    token_secret: bytes  # signs the Test tab's tokens (`store.tokens`)
    usage: UsageLog
    deployments: DeploymentStore
    deployer: Deployer
    lifecycle: Lifecycle  # the deployer's changes, as a state machine
    telemetry: Telemetry  # deployments' request counts and log lines, written in batches
    track_sessions: TrackSessions  # trackers kept between the frames of a track session
    streams: Streams  # camera streams: the definitions, and the runners this process holds
    uploads: UploadStore  # projects, uploaded models, upload sessions and export jobs


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]


async def get_catalog(services: ServicesDep) -> Catalog:
    return services.engine.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def get_caller(request: Request, services: ServicesDep, settings: SettingsDep) -> Principal:
    principal = await authenticate(
        request, services.keys, services.auth_failures, services.token_secret, settings.anonymous_plan
    )
    request.state.plan = principal.plan  # for metrics
    return principal


CallerDep = Annotated[Principal, Depends(get_caller)]


async def get_key_holder(caller: CallerDep) -> Principal:
    """A caller with a key (or its token): account routes have nothing to say to an anonymous one."""
    if caller.anonymous:
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return caller


KeyHolderDep = Annotated[Principal, Depends(get_key_holder)]


def _scope(scope: str) -> object:
    async def check(caller: CallerDep) -> Principal:
        if scope not in caller.scopes:
            raise Forbidden(
                f"this key lacks the {scope!r} scope; its scopes: {', '.join(sorted(caller.scopes))}"
            )
        return caller

    return Depends(check)


# A key may do what its scopes say: `predict` runs and lists models (the default), `admin` manages
# the user's keys through the API, `deployments` manages dedicated endpoints, `streams` camera streams,
# `export` uploads checkpoints and exports them (`frontend.api.uploads`).
StreamsCallerDep = Annotated[Principal, _scope("streams")]
PredictCallerDep = Annotated[Principal, _scope("predict")]
AdminCallerDep = Annotated[Principal, _scope("admin")]
DeploymentsCallerDep = Annotated[Principal, _scope("deployments")]
ExportCallerDep = Annotated[Principal, _scope("export")]


async def get_quota(caller: PredictCallerDep, services: ServicesDep, settings: SettingsDep) -> Decision:
    """Spend one request of the caller's plan, or refuse with 429 and the limit's headers."""
    plan = settings.plans.get(caller.plan)
    if plan is None:
        raise ServingError(f"the plan {caller.plan!r} of this key is not configured")
    decision = await services.limiter.check(caller.key_id, Plan(*plan))
    if not decision.allowed:
        record_rate_limited(caller.plan, "quota" if decision.window_s == DAY_S else "rate")
        raise RateLimited(
            f"the {caller.plan} plan allows {plan[0]} requests per minute and {plan[1]} per day; "
            f"retry in {decision.retry_after_s} s",
            retry_after=decision.retry_after_s,
            headers=decision.headers(),
        )
    return decision


QuotaDep = Annotated[Decision, Depends(get_quota)]


async def get_api_format(
    request: Request,
    settings: SettingsDep,
    format: Annotated[
        ApiFormat | None, Query(description="the answer's contract: seed or platform (default: the server's)")
    ] = None,
) -> Format:
    """The request's contract, chosen once: everything below renders through it."""
    return resolve_format(request.url.path, format, settings.api_format)


ApiFormatDep = Annotated[Format, Depends(get_api_format)]
