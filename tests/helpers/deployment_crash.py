"""A process that replaces (or stops) a deployment and ends itself at one step of it, as a crash
would (`os._exit`: no cleanup, no finally). Run by tests/frontend/test_deployment_crash.py:

    python -m tests.helpers.deployment_crash <sqlite url> <repository> <deployment id> <action> <step>
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from core.slug import Slug
from store.audit import SYSTEM
from tests.helpers.deployments import OWNER, FakeTriton, lifecycle

CRASHED = 17  # the exit status that says it died at the step


async def main(database: str, repository: Path, deployment_id: str, action: str, step: str) -> None:
    lc = lifecycle(database, repository, FakeTriton(repository).start())

    def crash(done: str) -> None:
        if done == step:
            os._exit(CRASHED)

    lc.deployer.checkpoint = crash
    if action == "stop":
        await lc.stop(deployment_id, SYSTEM, None)
    else:
        source = lc.deployer.source(Slug(OWNER, "p", "b"))
        await lc.deploy(deployment_id, source, action, SYSTEM, None)


if __name__ == "__main__":
    database, repository, deployment_id, action, step = sys.argv[1:]
    asyncio.run(main(database, Path(repository), deployment_id, action, step))
