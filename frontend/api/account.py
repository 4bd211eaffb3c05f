"""The caller's own account: its keys (the SDK's `account.api_keys`), its usage, and browser tokens.

Every route here answers about the caller's user only: never another user's keys or numbers,
never a key's secret (a new key is shown once, in the answer that creates it). Listing keys and
usage needs any valid key; creating and revoking keys needs the `admin` scope; a browser token
is made from a key with the `predict` scope, in an HttpOnly, SameSite=Strict cookie the page's
scripts cannot read. Errors are the Platform's `{"error": ...}` (`frontend.formats`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from frontend.deps import AdminCallerDep, KeyHolderDep, PredictCallerDep, ServicesDep, SettingsDep
from frontend.errors import InvalidRequest, ModelNotFound, Unauthorized
from frontend.formats import json_response
from frontend.guards.auth import TOKEN_COOKIE, client_ip, from_token
from frontend.guards.ratelimit import Plan
from frontend.schemas import error_docs
from store import tokens
from store.audit import Actor
from store.keys import SCOPES, KeyInfo, parse_scopes

router = APIRouter(responses=error_docs(400, 401, 403, 404, 429, 503))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _key_item(key: KeyInfo) -> dict[str, str]:
    """The SDK's `AccountApiKeysResponseKeysItem`: the public part of the key, never its secret."""
    return {
        "keyId": key.key_id,
        "name": key.name,
        "keyPrefix": f"tri_{key.key_id}",
        "createdAt": _iso(key.created_at) or "",
    }


@router.get("/api/api-keys", summary="Your active API keys (the SDK's account.api_keys)")
async def list_api_keys(caller: KeyHolderDep, services: ServicesDep) -> Response:
    store = services.keys
    keys = await anyio.to_thread.run_sync(store.list_keys, caller.user)
    now = store.clock()
    active = [_key_item(k) for k in keys if k.revoked_at is None and not k.expired(now)]
    return json_response({"keys": active})


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=64)
    scopes: list[str] = Field(["predict"], description=f"any of {', '.join(SCOPES)}")
    expiresInDays: int | None = Field(None, ge=1, le=3650)


@router.post("/api/api-keys", status_code=201, summary="Create a key for yourself (scope admin)")
async def create_api_key(
    request: Request, caller: AdminCallerDep, services: ServicesDep, body: Annotated[NewKey, Body()]
) -> Response:
    try:
        scopes = parse_scopes(body.scopes)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    lifetime = timedelta(days=body.expiresInDays) if body.expiresInDays else None

    def create() -> tuple[str, str]:
        return services.keys.create_key(
            caller.user,
            caller.plan,
            name=body.name,
            scopes=scopes,
            expires_in=lifetime,
            actor=Actor.key(caller.key_id, client_ip(request)),
        )

    key, key_id = await anyio.to_thread.run_sync(create)
    answer = {"keyId": key_id, "name": body.name, "key": key, "scopes": sorted(scopes)}
    return json_response(answer, status_code=201)


@router.delete("/api/api-keys/{key_id}", summary="Revoke one of your keys (scope admin)")
async def revoke_api_key(
    key_id: str, request: Request, caller: AdminCallerDep, services: ServicesDep
) -> Response:
    actor = Actor.key(caller.key_id, client_ip(request))

    def revoke() -> bool:
        return services.keys.revoke(key_id, actor=actor, user=caller.user)

    if not await anyio.to_thread.run_sync(revoke):
        raise ModelNotFound(f"no active key {key_id} of yours")  # another user's key is just as absent
    return json_response({"keyId": key_id, "revoked": True})


@router.get("/api/usage", summary="Your plan, what is left of it, and requests per model")
async def usage(caller: KeyHolderDep, services: ServicesDep, settings: SettingsDep) -> Response:
    """Trident's own answer (the SDK's `billing.usage_summary` describes storage, credits and
    seats, which a self-hosted server does not have)."""
    limits = settings.plans.get(caller.plan, (0, 0))
    (minute, minute_reset), (day, day_reset) = await services.limiter.remaining(caller.key_id, Plan(*limits))
    now = services.keys.clock()

    def per_model() -> list[dict[str, object]]:
        services.usage.flush()  # this process's counts are exact; other workers' join within a minute
        return [
            {"model": m.model, "lastDay": m.last_day, "last30Days": m.last_30_days}
            for m in services.usage.per_model(caller.user, now)
        ]

    return json_response(
        {
            "plan": {"name": caller.plan, "perMinute": limits[0], "perDay": limits[1]},
            "remaining": {
                "minute": minute,
                "day": day,
                "minuteResetSeconds": minute_reset,
                "dayResetSeconds": day_reset,
            },
            "models": await anyio.to_thread.run_sync(per_model),
        }
    )


@router.post("/api/tokens", summary="Trade a key for a 15-minute browser token (an HttpOnly cookie)")
async def create_token(request: Request, caller: PredictCallerDep, services: ServicesDep) -> Response:
    if caller.via_token or caller.anonymous:
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>' to get a token")
    expires = int(services.keys.clock().timestamp()) + tokens.LIFETIME_S
    token = tokens.issue(services.token_secret, tokens.TokenClaims(caller.key_id, caller.user, expires))
    response = json_response({"user": caller.user, "scopes": ["predict"], "expiresIn": tokens.LIFETIME_S})
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=tokens.LIFETIME_S,
        path="/api",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/api/tokens", summary="Whether this browser's token is still good (never a 401)")
async def token_status(request: Request, services: ServicesDep) -> Response:
    """The pages ask this first, so a browser without a token is shown the key form without a
    refused call (and its console error) first."""
    cookie = request.cookies.get(TOKEN_COOKIE, "")
    try:
        caller = await from_token(cookie, services.keys, services.token_secret)
    except Unauthorized:
        return json_response({"active": False})
    return json_response({"active": True, "user": caller.user})


@router.delete("/api/tokens", summary="Forget the browser token")
async def delete_token() -> Response:
    response = json_response({"deleted": True})
    response.delete_cookie(TOKEN_COOKIE, path="/api", httponly=True, samesite="strict")
    return response
