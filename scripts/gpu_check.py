"""GPU check of the TensorRT path (run by scripts/gpu_check.sh on a host with an NVIDIA GPU).

Exports a test detector with `trident export --format engine`, loads the plan with TensorRT (it
must deserialize: no Ultralytics header), runs it at batch 1 and 4 and compares with ONNX Runtime
on the same ONNX; then, if an NGC `tritonserver` is on PATH, serves the folder with
`--model-config-name=tensorrt` and compares Triton's answer too. Prints one line per check and
exits non-zero on the first mismatch.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import tensorrt as trt
import torch
from ultralytics.utils import ASSETS

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from postprocess.letterbox import model_input  # noqa: E402
from tests.helpers.models import build_busy_model  # noqa: E402

SLUG = "gpu/check/yolo11n"
NAME = SLUG.replace("/", "~")


def compare(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    """Raw head rows the reference scores above 0.25: boxes within 1 px, scores within 0.02 (FP16)."""
    scores = reference[:, 4:, :].max(axis=1)
    keep = scores > 0.25
    box_err = float(np.abs(ours[:, :4, :] - reference[:, :4, :]).transpose(0, 2, 1)[keep].max(initial=0))
    score_err = float(np.abs(ours[:, 4:, :].max(axis=1) - scores)[keep].max(initial=0))
    ok = keep.sum() > 0 and box_err < 1.0 and score_err < 0.02
    rows = int(keep.sum())
    print(
        f"{'ok ' if ok else 'BAD'} {what}: {rows} rows, box err {box_err:.3f} px, score err {score_err:.4f}"
    )
    if not ok:
        sys.exit(1)


def run_plan(plan: Path, batch: np.ndarray) -> np.ndarray:
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan.read_bytes())
    assert engine is not None, "TensorRT could not deserialize the plan"
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inp = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    out = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    x = torch.from_numpy(batch).cuda().contiguous()
    context.set_input_shape(inp, tuple(x.shape))
    y = torch.empty(tuple(context.get_tensor_shape(out)), dtype=torch.float32, device="cuda")
    context.set_tensor_address(inp, x.data_ptr())
    context.set_tensor_address(out, y.data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return y.cpu().numpy()


def serve_with_triton(repo: Path, batch: np.ndarray) -> np.ndarray | None:
    import shutil

    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    if shutil.which("tritonserver") is None:
        print("skip Triton: no tritonserver on PATH (run inside the NGC image to check serving)")
        return None
    server = subprocess.Popen(
        [
            "tritonserver",
            f"--model-repository={repo}",
            "--model-config-name=tensorrt",
            "--http-port=18000",
            "--grpc-port=18001",
            "--metrics-port=18002",
            "--strict-readiness=true",
        ]
    )
    try:
        client = grpcclient.InferenceServerClient("127.0.0.1:18001")
        for _ in range(240):
            try:
                if client.is_model_ready(NAME):
                    break
            except InferenceServerException:
                pass  # not up yet
            time.sleep(0.5)
        tensor = grpcclient.InferInput("images", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        return client.infer(NAME, [tensor]).as_numpy("output0")
    finally:
        server.terminate()
        server.wait(60)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="trident-gpu-check-"))
    weights = build_busy_model("yolo11n.yaml", work / "yolo11n.pt")
    repo = work / "repo"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "trident",
            "export",
            str(weights),
            "--slug",
            SLUG,
            "--repository",
            str(repo),
            "--format",
            "engine",
            "--max-batch",
            "8",
        ],
        check=True,
    )
    plan = repo / NAME / "1" / "model.plan"
    configs = sorted(p.name for p in (repo / NAME / "configs").iterdir())
    print(f"ok  plan built: {plan.stat().st_size} bytes, configs: {configs}")
    session = ort.InferenceSession(str(plan.with_name("model.onnx")), providers=["CPUExecutionProvider"])
    for image_name, imgsz in (("bus.jpg", 640), ("zidane.jpg", 480)):
        image = cv2.imread(str(ASSETS / image_name))
        x, _ = model_input(image, export_hw=(640, 640), stride=32, dynamic=True, imgsz=imgsz)
        for n in (1, 4):
            batch = np.repeat(x, n, axis=0)
            reference = session.run(None, {"images": batch})[0]
            compare(
                run_plan(plan, batch), reference, f"TensorRT vs ONNX {image_name} {x.shape[2:]} batch {n}"
            )
    x, _ = model_input(
        cv2.imread(str(ASSETS / "bus.jpg")), export_hw=(640, 640), stride=32, dynamic=True, imgsz=640
    )
    served = serve_with_triton(repo, x)
    if served is not None:
        compare(served, session.run(None, {"images": x})[0], "Triton tensorrt_plan vs ONNX bus.jpg")


if __name__ == "__main__":
    main()
