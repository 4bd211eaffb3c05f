"""How `make test`'s two workers (`pytest -n 2`) share the suite: a file at a time, each worker
on its own session stack (`tests.helpers.stack`, started by the first test that asks for it).

The files that export the same YAML-built task models (every task of YOLO11 and YOLO26, the
semantic and depth models) go to one worker together, so each of those models is exported once
(`ExportCache` is per process); every other file is a unit of its own, largest first. xdist's
`--dist loadgroup` cannot group with pytest 9, whose node ids its group suffix no longer reaches,
so the scheduler is this one.

`tests/containers/` is one unit (its files share one built and running compose stack), handed out
first: it runs on one worker for most of the suite's length while the other takes the rest.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

SHARED_MODELS = "task-models"
CONTAINERS = "tests/containers/"
SHARING = {  # test files exporting the same busy task models
    "tests/integration/test_tasks.py",
    "tests/integration/test_video.py",
    "tests/integration/test_maps.py",
    "tests/integration/test_platform_sdk.py",
    "tests/browser/",
}


def work_unit(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    if path.startswith(CONTAINERS):
        return CONTAINERS
    return SHARED_MODELS if any(path.startswith(p) for p in SHARING) else path


class ContainersFirst(OrderedDict[str, Any]):
    """xdist's queue of units (largest first), with the container unit moved to its head."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key == CONTAINERS:
            self.move_to_end(key, last=False)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByFileSharingModels(LoadScopeScheduling):
        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            self.workqueue = ContainersFirst()

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByFileSharingModels(config, log)
