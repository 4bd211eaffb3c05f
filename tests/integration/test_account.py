"""The account calls through the real stack: the SDK's `account.api_keys` and `ul cloud account
api-keys`, usage per model, tokens against other users' models, and anonymous access on and off."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ultralytics_platform import Platform
from ultralytics_platform.types import AccountApiKeysResponse

from store.keys import KeyStore
from tests.helpers.sdk_contract import assert_matches
from tests.helpers.stack import Stack, in_one_minute
from tests.helpers.uploads import UL, ul_env
from trident import runtime

pytestmark = pytest.mark.integration
PUBLIC = "test/coco/yolo11n"
PRIVATE = "acct-owner/private/det"
TINY = Path(__file__).parents[1] / "fixtures" / "tiny.png"


@pytest.fixture(scope="module")
def private_model(stack: Stack, yolo11n_pt: Path) -> str:
    stack.export(yolo11n_pt, PRIVATE, visibility="private")
    stack.wait_model(PRIVATE, key=stack.create_key("acct-owner", "test"))
    return PRIVATE


def _expected_keys(stack: Stack, user: str) -> set[str]:
    store = KeyStore(stack.settings.key_store_url)
    return {k.key_id for k in store.list_keys(user) if k.revoked_at is None and not k.expired(store.clock())}


def test_the_sdk_lists_the_callers_own_keys_in_its_shape(sdk: Platform, stack: Stack) -> None:
    other = stack.create_key("acct-someone-else", "test")
    answer = sdk.account.api_keys()
    assert_matches(answer, AccountApiKeysResponse)
    listed = {k["keyId"] for k in answer["keys"]}
    assert stack.api_key[4:12] in listed and listed == _expected_keys(stack, "test")
    assert other[4:12] not in listed
    text = json.dumps(answer)
    assert stack.api_key not in text and stack.api_key[12:] not in text
    assert all(k["keyPrefix"] == f"tri_{k['keyId']}" for k in answer["keys"])


def test_ul_cloud_account_api_keys_prints_them(platform_url: str, stack: Stack, tmp_path: Path) -> None:
    run = subprocess.run(  # its JSON alone on stdout, so not the shared `ul`, which joins stderr
        [str(UL), "cloud", "account", "api-keys"],
        cwd=tmp_path,
        env=ul_env(platform_url, stack.api_key, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    printed = json.loads(run.stdout)
    assert {k["keyId"] for k in printed["keys"]} == _expected_keys(stack, "test")
    assert stack.api_key not in run.stdout + run.stderr


def test_usage_counts_requests_per_model_for_the_caller_only(stack: Stack) -> None:
    def attempt(n: int) -> None:
        key = stack.create_key(f"acct-usage-{n}", "test")
        for slug in (PUBLIC, PUBLIC, PUBLIC, "test/coco/yolo26n"):
            assert stack.predict(slug, TINY, key=key).status_code == 200
        answer = httpx.get(f"{stack.base_url}/api/usage", headers={"Authorization": f"Bearer {key}"}).json()
        assert answer["plan"] == {"name": "test", "perMinute": 1_000_000, "perDay": 1_000_000}
        assert answer["remaining"]["minute"] == answer["remaining"]["day"] == 1_000_000 - 4
        assert answer["models"] == [
            {"model": PUBLIC, "lastDay": 3, "last30Days": 3},
            {"model": "test/coco/yolo26n", "lastDay": 1, "last30Days": 1},
        ]

    in_one_minute(attempt)
    fresh = stack.create_key("acct-usage-fresh", "test")
    other = httpx.get(f"{stack.base_url}/api/usage", headers={"Authorization": f"Bearer {fresh}"}).json()
    assert other["models"] == [] and other["remaining"]["minute"] == 1_000_000


def test_a_token_sees_its_users_models_and_not_another_users(stack: Stack, private_model: str) -> None:
    owner = stack.create_key("acct-owner", "test")
    stranger = stack.create_key("acct-stranger", "test")
    for key, status in ((owner, 200), (stranger, 404)):
        made = httpx.post(f"{stack.base_url}/api/tokens", headers={"Authorization": f"Bearer {key}"})
        cookie = {"Cookie": f"trident_token={made.cookies['trident_token']}"}
        with TINY.open("rb") as f:
            answer = httpx.post(
                f"{stack.base_url}/api/models/{private_model}/predict",
                headers=cookie,
                files={"file": (TINY.name, f)},
                timeout=60,
            )
        assert answer.status_code == status, answer.text


@pytest.fixture(scope="module")
def anonymous_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A frontend that lets public models answer without a key, 3 requests a minute per IP."""
    plans = {"test": [1_000_000, 1_000_000], "anon": [3, 100]}
    log = tmp_path_factory.mktemp("anonymous") / "frontend.log"
    process, base = stack.spawn_frontend(log, TRIDENT_ANONYMOUS_PLAN="anon", TRIDENT_PLANS=json.dumps(plans))
    try:
        yield base
    finally:
        runtime.stop(process)


def _anonymous_predict(base: str, slug: str, ip: str = "") -> httpx.Response:
    """A keyless predict, from `ip` when given (X-Forwarded-For, trusted from 127.0.0.1)."""
    headers = {"X-Forwarded-For": ip} if ip else {}
    with TINY.open("rb") as f:
        return httpx.post(
            f"{base}/api/models/{slug}/predict", headers=headers, files={"file": (TINY.name, f)}, timeout=60
        )


def test_anonymous_access_is_off_by_default(stack: Stack) -> None:
    answer = _anonymous_predict(stack.base_url, PUBLIC)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"


def test_anonymous_access_serves_public_models_within_the_per_ip_plan(
    anonymous_url: str, private_model: str
) -> None:
    def attempt(n: int) -> None:
        ip = f"192.0.2.{n + 1}"  # each attempt its own client address, so its own per-IP window
        models = httpx.get(f"{anonymous_url}/api/models", headers={"X-Forwarded-For": ip})
        listed = {m["slug"] for m in models.json()["models"]}
        assert PUBLIC in listed and private_model not in listed
        private = _anonymous_predict(anonymous_url, private_model, ip)
        assert private.status_code == 401, "a private model asks for a key (and says nothing more)"
        first = _anonymous_predict(anonymous_url, PUBLIC, ip)
        assert first.status_code == 200 and first.json()["success"] is True
        assert first.headers["X-RateLimit-Limit"] == "3"
        assert _anonymous_predict(anonymous_url, PUBLIC, ip).status_code == 200
        refused = _anonymous_predict(anonymous_url, PUBLIC, ip)
        assert refused.status_code == 429 and "Retry-After" in refused.headers

    in_one_minute(attempt)
    assert httpx.get(f"{anonymous_url}/api/api-keys").status_code == 401
