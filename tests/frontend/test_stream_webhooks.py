"""A stream's webhook (`frontend.streams.webhooks`) against a real receiver on loopback
(`tests.helpers.webhook`): signed events in order, retries on 5xx, a 4xx failed at once, the queue
bound dropping the oldest and counting it, the URL policy, the secret never logged."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import orjson
import pytest
from prometheus_client import REGISTRY

from frontend.streams.sources import SourceRefused
from frontend.streams.webhooks import (
    Webhook,
    WebhookConfig,
    check_webhook,
    new_secret,
    parse_webhook,
    sign,
    verify,
)
from tests.helpers.aio import run
from tests.helpers.webhook import WebhookReceiver


async def until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    for _ in range(int(timeout_s * 100)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def config(**changes: object) -> WebhookConfig:
    values: dict[str, object] = {
        "allow_private": True,
        "queue": 3,
        "attempts": 30,
        "timeout_s": 2.0,
        "backoff_max_s": 0.05,
    }
    values.update(changes)
    return WebhookConfig(**values)  # type: ignore[arg-type]


def test_the_signature_is_what_the_readme_says_and_refuses_tampering_and_replay() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) > 40
    body = b'{"frame": 1}'
    header = sign(secret, 1_700_000_000, body)
    mac = hmac.new(secret.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"
    assert verify(secret, header, body, now=1_700_000_100)
    assert not verify(secret, header, body + b" ", now=1_700_000_100)  # altered body
    assert not verify("whsec_other", header, body, now=1_700_000_100)  # another stream's secret
    assert not verify(secret, header, body, now=1_700_000_000 + 301)  # replayed later
    assert not verify(secret, "garbage", body, now=1_700_000_000)


def test_a_hostile_signature_header_is_a_refusal_not_an_exception() -> None:
    """Receivers call `verify` on whatever arrived: non-ASCII text where the MAC or the time
    should be is refused (`compare_digest` raises on a non-ASCII str; `int` refuses "²")."""
    secret, body = new_secret(), b'{"frame": 1}'
    mac = sign(secret, 1_700_000_000, body).rpartition("v1=")[2]
    assert not verify(secret, f"t=1700000000,v1={mac[:-1]}é", body, now=1_700_000_000)
    assert not verify(secret, f"t=17000000²,v1={mac}", body, now=1_700_000_000)


def test_webhook_urls_follow_the_source_policy() -> None:
    with pytest.raises(SourceRefused, match="only http:// and https://"):
        parse_webhook("rtsp://127.0.0.1/cam")
    with pytest.raises(SourceRefused, match="webhook_url: only rtsp"):
        parse_webhook("ftp://127.0.0.1/x")
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.0.0.1/hook"):
        with pytest.raises(SourceRefused, match=r"webhook_url: the address .* private addresses are refused"):
            run(check_webhook(parse_webhook(url), allow_private=False))
    run(check_webhook(parse_webhook("http://127.0.0.1:9/hook"), allow_private=True))


def sample(name: str, stream: str) -> float:
    return REGISTRY.get_sample_value(f"trident_stream_webhook_{name}_total", {"stream": stream}) or 0.0


def test_events_arrive_signed_in_order_retried_on_5xx_and_the_bound_drops_the_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    secret = new_secret()
    stream = "st_unit_webhook"

    async def scenario(receiver: WebhookReceiver) -> Webhook:
        hook = Webhook(stream, receiver.url, secret, config())
        hook.start()
        for n in range(1, 4):
            hook.put(f"e-{n}", orjson.dumps({"frame": n}))
        await until(lambda: hook.delivered >= 3)
        receiver.fail_for(0.6)  # event 4 is tried again and again meanwhile; 5..10 fill the queue of 3
        hook.put("e-4", orjson.dumps({"frame": 4}))
        await asyncio.sleep(0.1)
        for n in range(5, 11):
            hook.put(f"e-{n}", orjson.dumps({"frame": n}))
        await until(lambda: hook.delivered >= 7)
        receiver.answer_once(400)  # refused: failed at once, not retried
        hook.put("e-11", orjson.dumps({"frame": 11}))
        hook.put("e-12", orjson.dumps({"frame": 12}))
        await until(lambda: hook.delivered + hook.failed >= 9)
        await hook.close()
        return hook

    with WebhookReceiver() as receiver:
        hook = run(scenario(receiver))
    accepted = receiver.accepted()
    frames = [orjson.loads(r.body)["frame"] for r in accepted]
    assert frames == [1, 2, 3, 4, 8, 9, 10, 12]  # in order; 5, 6, 7 cut by the bound; 11 refused
    for r in accepted:
        assert verify(secret, r.headers["x-trident-signature"], r.body, time.time())
        assert r.headers["x-trident-event-id"] == f"e-{orjson.loads(r.body)['frame']}"
        assert r.headers["content-type"] == "application/json"
    tries_of_4 = [r for r in receiver.received if r.headers["x-trident-event-id"] == "e-4"]
    assert len(tries_of_4) >= 3 and tries_of_4[-1].answered == 200
    assert (hook.delivered, hook.failed, hook.dropped) == (8, 1, 3)
    assert hook.retried == len(tries_of_4) - 1
    counts = hook.counts()
    assert counts["url"] == receiver.url.split("?")[0] and counts["queued"] == 0
    assert counts["last_error"] == ""  # the last event was delivered
    assert (sample("deliveries", stream), sample("failures", stream), sample("dropped", stream)) == (8, 1, 3)
    assert sample("retries", stream) == hook.retried
    assert secret not in caplog.text and "hooksecret" not in caplog.text and secret not in repr(hook)
    assert "answered HTTP 500" in caplog.text and "answered HTTP 400" in caplog.text


def test_a_dead_receiver_fails_each_event_after_its_tries() -> None:
    async def scenario() -> Webhook:
        hook = Webhook("st_unit_dead", "http://127.0.0.1:9/hook", new_secret(), config(attempts=3))
        hook.start()
        hook.put("e-1", b"{}")
        hook.put("e-2", b"{}")
        await until(lambda: hook.failed >= 2)
        await hook.close()
        return hook

    hook = run(scenario())
    assert (hook.delivered, hook.failed, hook.retried) == (0, 2, 4)
    assert hook.last_error.startswith("could not deliver")
