"""The integration stack (real Triton + frontend), shared with tests/integration."""

from tests.integration.conftest import stack  # noqa: F401
