"""A deployment lifecycle without Triton: a fake standing in for `frontend.serving.triton.Triton`
(it loads what the repository holds, as Triton's repository API does), exported models written as
the exporter lays them out, and a `Lifecycle` over SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
from google.protobuf import json_format, text_format
from numpy.typing import NDArray
from tritonclient.grpc import model_config_pb2 as mc

from core.modelspec import CANDIDATES_OUTPUT, CONF_INPUT, SPEC_PARAMETER, ModelSpec
from frontend.deployments.deployer import Deployer
from frontend.deployments.lifecycle import Lifecycle
from frontend.errors import ServiceUnavailable, ServingError
from frontend.serving.triton import Triton
from store.clock import utc_now
from store.deployments import DeploymentStore, Telemetry
from store.keys import KeyStore

OWNER = "alice"
BROKEN = b"not a model"


class FakeTriton:
    """Loads a repository folder when asked (refusing one whose weights are `BROKEN`), answers
    inferences on loaded models only, and records every call."""

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self.loaded: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.requests: list[tuple[str, list[str], list[str]]] = []  # model, inputs, outputs

    def start(self) -> FakeTriton:
        """Load every model folder there is, as Triton does at start (`--load-model=*`)."""
        self.loaded = {p.name for p in self.repository.iterdir() if (p / "config.pbtxt").is_file()}
        return self

    async def load(self, name: str) -> None:
        self.calls.append(("load", name))
        weights = self.repository / name / "1" / "model.onnx"
        if not (self.repository / name / "config.pbtxt").is_file():
            raise ServingError(f"failed to load '{name}': no model folder")
        if weights.read_bytes() == BROKEN:
            raise ServingError(f"failed to load '{name}': protobuf parsing failed")
        self.loaded.add(name)

    async def unload(self, name: str) -> None:
        self.calls.append(("unload", name))
        self.loaded.discard(name)

    async def model_config(self, name: str) -> dict[str, Any]:
        if name not in self.loaded:
            raise ServiceUnavailable(f"model {name} is not loaded right now")
        config = text_format.Parse((self.repository / name / "config.pbtxt").read_text(), mc.ModelConfig())
        return json_format.MessageToDict(config, preserving_proto_field_name=True)

    async def infer(
        self, name: str, inputs: dict[str, NDArray[Any]], outputs: list[str], timeout_s: float | None = None
    ) -> dict[str, NDArray[Any]]:
        if name not in self.loaded:
            raise ServiceUnavailable(f"model {name} is not loaded right now")
        self.requests.append((name, sorted(inputs), list(outputs)))
        return {output: np.zeros((1, 6, 1), np.float32) for output in outputs}


def export(
    repository: Path, project: str, model: str, candidates: bool = False, broken: bool = False
) -> None:
    """`<repository>/alice~<project>~<model>/{config.pbtxt,1/model.onnx}` as the exporter writes them."""
    spec = ModelSpec("detect", {0: "person"}, (32, 32), 32, False, False, owner=OWNER)
    config = mc.ModelConfig(name=f"{OWNER}~{project}~{model}", platform="onnxruntime_onnx", max_batch_size=4)
    config.input.add(name="images", data_type=mc.TYPE_FP32, dims=[3, 32, 32])
    config.output.add(name="output0", data_type=mc.TYPE_FP32, dims=[5, 21])
    if candidates:
        config.input.add(name=CONF_INPUT, data_type=mc.TYPE_FP32, dims=[1])
        config.output.add(name=CANDIDATES_OUTPUT, data_type=mc.TYPE_FP32, dims=[-1, 6])
    config.instance_group.add(count=1)
    config.parameters[SPEC_PARAMETER].string_value = spec.to_json()
    folder = repository / config.name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text_format.MessageToString(config))
    (folder / "1" / "model.onnx").write_bytes(BROKEN if broken else f"{project}/{model}".encode())


def lifecycle(database: str, repository: Path, triton: FakeTriton) -> Lifecycle:
    """A lifecycle on `database` (an SQLite URL) and `repository`, draining without a grace."""
    engine = KeyStore(database).engine  # the key store's schema: the audit trail's table
    deployer = Deployer(cast(Triton, triton), DeploymentStore(engine), repository)
    deployer.drain_grace_s = 0.0
    return Lifecycle(deployer, Telemetry(engine, 100), utc_now)
