"""Settings refuse what they do not know: a misspelt keyword or `TRIDENT_` variable would otherwise
leave the default in force without a word."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from core.settings import Settings, unknown_env
from trident.cli import app


def test_an_unknown_keyword_is_an_error() -> None:
    with pytest.raises(ValidationError, match="max_inflight"):
        Settings(max_inflight=4)  # type: ignore[call-arg]


def test_unknown_variables_are_reported_with_the_closest_setting() -> None:
    env = {
        "TRIDENT_MAX_INFLIGHT": "4",
        "trident_triton_grpc_prot": "1",
        "TRIDENT_PORT": "8080",  # a setting
        "TRIDENT_API_KEY": "tri_x",  # the web UI's snippets read it; not a setting, not an error
        "TRIDENT_ZZZ": "1",
        "PATH": "/bin",
    }
    assert unknown_env(env) == [
        "TRIDENT_MAX_INFLIGHT is not a Trident setting; did you mean TRIDENT_MAX_IN_FLIGHT?",
        "TRIDENT_ZZZ is not a Trident setting",
        "trident_triton_grpc_prot is not a Trident setting; did you mean TRIDENT_TRITON_GRPC_PORT?",
    ]
    assert unknown_env({"TRIDENT_" + name.upper(): "" for name in Settings.model_fields}) == []


@pytest.mark.parametrize("command", ["serve", "run", "triton"])
def test_a_server_does_not_start_with_an_unknown_variable(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIDENT_MAX_INFLIGHT", "4")
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 1
    assert "TRIDENT_MAX_INFLIGHT" in result.output and "TRIDENT_MAX_IN_FLIGHT" in result.output
