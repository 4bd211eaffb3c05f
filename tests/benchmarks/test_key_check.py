"""benchmarks/key_check.py runs, and its `before` baseline answers as the key check did (no timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from store.keys import KeyStore, new_key


def load() -> ModuleType:
    path = Path(__file__).parents[2] / "benchmarks" / "key_check.py"
    spec = importlib.util.spec_from_file_location("key_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["key_check"] = module
    spec.loader.exec_module(module)
    return module


key_check = load()


def test_the_baseline_accepts_and_refuses_what_verify_does(tmp_path: Path) -> None:
    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    key, key_id = store.create_key("alice", "free")
    now = store.verify(key)
    then = key_check.before(store, key)
    assert now is not None and then is not None
    assert (then.key_id, then.user, then.plan) == (now.key_id, now.user, now.plan)
    assert key_check.before(store, new_key()[0]) is None
    store.revoke(key_id)
    assert key_check.before(store, key) is None and store.verify(key) is None


def test_the_benchmark_measures_all_three_paths() -> None:
    medians = key_check.measure(rounds=20, flush_every=5)
    assert set(medians) == {"before", "now", "token"} and all(ms > 0 for ms in medians.values())
