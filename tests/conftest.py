"""Shared fixtures: the example images, generated odd-size images, and test models; the session
stack (`tests/helpers/stack.py`, a plugin so that it is defined once); the integration marker."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import cv2
import numpy as np
import pytest

pytest_plugins = ["tests.helpers.stack", "tests.helpers.scheduling", "tests.helpers.postgres"]
ODD_SIZES = [(333, 517), (1001, 37), (12, 3000)]  # (width, height)
INTEGRATION = ("integration", "browser")  # folders whose tests need the local Triton


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM (`timeout`, CI's cancel) tears down like Ctrl-C: the session
    stacks' Triton and frontends are stopped by their fixtures instead of outliving the run.

    A run started in the background by a shell without job control (`cmd &` in a script) begins
    with SIGINT ignored, and ignored signals stay ignored across `exec`: every `trident run` the
    tests start would then keep ignoring the Ctrl-C they send it, as it should under `nohup`. A
    handler of our own is reset to the default in each child, so the children start as from a
    terminal."""
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under `INTEGRATION` (`-m "not integration"` runs the rest); a conftest's
    `pytestmark` would not reach the test modules."""
    tests = Path(__file__).parent
    for item in items:
        if item.path.relative_to(tests).parts[0] in INTEGRATION:
            item.add_marker(pytest.mark.integration)


def _assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="session")
def bus() -> Path:
    return _assets() / "bus.jpg"


@pytest.fixture(scope="session")
def zidane() -> Path:
    return _assets() / "zidane.jpg"


@pytest.fixture(scope="session")
def odd_images(tmp_path_factory: pytest.TempPathFactory, bus: Path) -> list[Path]:
    """Three images of odd sizes: bus.jpg resized plus seeded noise, saved losslessly (PNG)."""
    out = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(7)
    source = cv2.imread(str(bus))
    paths = []
    for w, h in ODD_SIZES:
        image = cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)
        image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
        path = out / f"odd_{w}x{h}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def all_images(bus: Path, zidane: Path, odd_images: list[Path]) -> list[Path]:
    return [bus, zidane, *odd_images]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def yolo11n_pt(model_dir: Path) -> Path:
    from tests.helpers.models import build_busy_model

    return build_busy_model("yolo11n.yaml", model_dir / "yolo11n.pt")


@pytest.fixture(scope="session")
def yolo26n_pt(model_dir: Path) -> Path:
    from tests.helpers.models import build_busy_model

    return build_busy_model("yolo26n.yaml", model_dir / "yolo26n.pt")
