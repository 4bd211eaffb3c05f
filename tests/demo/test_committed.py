"""The demo models' weights are in the repository (no Triton needed: moved out of the integration
tests, which serve them)."""

from __future__ import annotations

import pytest

from demo.models import weights
from demo.train import RECIPES


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_has_its_weights_committed(name: str) -> None:
    """`make run` serves every recipe; weights that went missing would otherwise go unnoticed."""
    assert weights(RECIPES[name]).is_file(), (
        f"{weights(RECIPES[name])} is missing (`trident demo train {name}`)"
    )
