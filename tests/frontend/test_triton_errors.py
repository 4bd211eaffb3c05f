"""Every way a Triton call can fail maps to one documented status (reliability Part C, case 22)."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from frontend.errors import InferenceTimeout, ServiceUnavailable, ServingError
from frontend.serving.triton import map_error


@pytest.mark.parametrize(
    ("status", "message", "expected", "http"),
    [
        ("StatusCode.UNAVAILABLE", "Exceeds maximum queue size", ServiceUnavailable, 503),
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ServiceUnavailable, 503),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", InferenceTimeout, 504),
        ("StatusCode.CANCELLED", "Locally cancelled", ServiceUnavailable, 503),
        ("StatusCode.NOT_FOUND", "Request for unknown model", ServiceUnavailable, 503),
        ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'images'", ServingError, 500),
        ("StatusCode.INTERNAL", "onnxruntime failed", ServingError, 500),
        ("StatusCode.SOMETHING_NEW", "?", ServingError, 500),
        (None, "no status at all", ServingError, 500),
    ],
)
def test_triton_failures_map_to_documented_statuses(
    status: str | None, message: str, expected: type[ServingError], http: int
) -> None:
    error = map_error(InferenceServerException(msg=message, status=status), "demo~x~y")
    assert type(error) is expected
    response = error.to_response()
    assert response.status_code == http
    assert b"Traceback" not in response.body and message.encode() not in response.body  # no internals leak
    if http == 503:
        assert response.headers["Retry-After"] == "1"


def _spec(task: str) -> object:
    from core.modelspec import ModelSpec

    return ModelSpec(
        task=task,
        names={i: str(i) for i in range(80)},
        imgsz=(640, 640),
        stride=32,  # type: ignore[arg-type]
        dynamic=False,
        end2end=False,
        kpt_shape=(17, 3) if task == "pose" else None,
    )


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb", "classify"])
@pytest.mark.parametrize(
    "outputs", [{}, {"output0": "wrong"}, {"output0": (2, 84, 8400)}, {"output0": (84,)}]
)
def test_malformed_model_outputs_are_a_500_not_a_crash(task: str, outputs: dict[str, object]) -> None:
    import numpy as np

    from pipeline.contract import PredictOptions
    from pipeline.decode import DECODERS, ModelOutputError
    from pipeline.prepare import Prepared

    arrays = {
        k: (np.zeros(v, np.float32) if isinstance(v, tuple) else np.array(v)) for k, v in outputs.items()
    }
    prep = Prepared(np.zeros((1, 3, 640, 640), np.float32), (640, 640), (480, 640))
    with pytest.raises(ModelOutputError, match="malformed"):
        DECODERS[task](arrays, _spec(task), PredictOptions(), prep)  # type: ignore[arg-type]


def test_nan_scores_are_dropped_not_served() -> None:
    import numpy as np

    from pipeline.contract import PredictOptions
    from pipeline.decode import decode_detect
    from pipeline.prepare import Prepared

    output = np.full((1, 84, 8400), np.nan, dtype=np.float32)
    prep = Prepared(np.zeros((1, 3, 640, 640), np.float32), (640, 640), (480, 640))
    assert len(decode_detect({"output0": output}, _spec("detect"), PredictOptions(), prep)) == 0  # type: ignore[arg-type]


def _growth(work: object, rounds: int = 200) -> tuple[int, int]:
    """Bytes still allocated and file descriptors still open after `rounds` more runs of `work`."""
    import gc
    import os
    import tracemalloc

    for _ in range(20):  # warm-up: caches, lazy imports
        work()  # type: ignore[operator]
    gc.collect()
    tracemalloc.start()
    fds, before = len(os.listdir("/proc/self/fd")), tracemalloc.get_traced_memory()[0]
    for _ in range(rounds):
        work()  # type: ignore[operator]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, len(os.listdir("/proc/self/fd")) - fds


def _error_table_once() -> None:
    import numpy as np

    from pipeline.contract import PredictOptions
    from pipeline.decode import DECODERS, ModelOutputError
    from pipeline.prepare import Prepared

    for status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.INTERNAL", None):
        map_error(InferenceServerException(msg="x", status=status), "demo~x~y").to_response()
    prep = Prepared(np.zeros((1, 3, 64, 64), np.float32), (64, 64), (64, 64))
    for task in ("detect", "segment", "pose", "obb", "classify"):
        with pytest.raises(ModelOutputError):
            DECODERS[task]({"output0": np.zeros((84,), np.float32)}, _spec(task), PredictOptions(), prep)  # type: ignore[arg-type]


def test_the_error_table_leaks_neither_memory_nor_file_descriptors() -> None:
    memory, fds = _growth(_error_table_once)
    assert memory < 256 * 1024 and fds == 0


def test_negative_control_the_leak_probe_sees_a_deliberate_leak() -> None:
    kept: list[bytes] = []
    memory, _ = _growth(lambda: (_error_table_once(), kept.append(bytes(4096))))
    assert memory >= 200 * 4096
