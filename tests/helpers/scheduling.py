"""How `make test`'s two workers (`pytest -n 2`) share the suite: one runs every test on the
session stack, in collection order, on one stack (two stacks would export every model twice);
the other takes the rest, a file at a time (module fixtures are built once). The tests that
start their own Triton (`trident run`, the supervisor) then run beside the stack's, not after.

Which tests use the stack is known where they are collected (their fixtures), on the workers;
the scheduler, in the controller, sees node ids only. So the workers write those ids to a file
the controller named (an environment variable the workers inherit) before they report their
collection, and the scheduler reads it when it splits the work. xdist's own `--dist loadgroup`
cannot do this with pytest 9, whose node ids its group suffix no longer reaches.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

# the file listing the node ids of the tests on the stack (not TRIDENT_: frontends refuse unknown settings)
STACK_IDS = "PYTEST_STACK_IDS_FILE"
STACK_FIXTURE = "stack"


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        handle, name = tempfile.mkstemp(prefix="trident-stack-ids-", suffix=".json")
        os.close(handle)
        os.environ[STACK_IDS] = name


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and (name := os.environ.pop(STACK_IDS, None)):
        Path(name).unlink(missing_ok=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput") and (name := os.environ.get(STACK_IDS)):
        ids = [item.nodeid for item in items if STACK_FIXTURE in getattr(item, "fixturenames", ())]
        written = Path(f"{name}.{os.getpid()}")
        written.write_text(json.dumps(ids))
        written.replace(name)  # both workers write the same list; each write is whole


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class StackAsOneUnit(LoadScopeScheduling):
        on_stack: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.on_stack is None:
                self.on_stack = set(json.loads(Path(os.environ[STACK_IDS]).read_text() or "[]"))
            return STACK_FIXTURE if nodeid in self.on_stack else nodeid.split("::")[0]

    return StackAsOneUnit(config, log)
