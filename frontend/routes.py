"""The predict calls, declared once: their paths and the contracts they answer in.

Shedding refuses them at capacity, metrics time and label them, `formats` picks their contract,
and the routers mount them, all from this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class PredictRoute:
    kind: Literal["model", "deployment"]
    path: str  # as the router declares it
    shared: bool  # answers in both contracts (`?format=`, else the server's); else the Platform's alone
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(self.path)) + "$"
        object.__setattr__(self, "pattern", re.compile(regex))


MODEL_PREDICT = PredictRoute("model", "/api/models/{owner}/{project}/{model}/predict", shared=True)
DEPLOYMENT_PREDICT = PredictRoute("deployment", "/api/deployments/{owner}/{deployment}/predict", shared=False)
PREDICT_ROUTES = (MODEL_PREDICT, DEPLOYMENT_PREDICT)


def predict_route(path: str) -> PredictRoute | None:
    """The predict call at `path`, or None for any other path."""
    return next((route for route in PREDICT_ROUTES if route.pattern.match(path)), None)
