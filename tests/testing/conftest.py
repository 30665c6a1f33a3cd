"""Fixtures of the strict server's own tests: a manual clock, and a server whose log lines are
checked for each module's ``MARKER`` (a string every token it mints carries, so a leak shows)."""

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mcp_sync_auth.testing import StrictAuthServer

from ..clocks import ManualClock


@pytest.fixture
def clock():
    return ManualClock(2_000_000.0)


@pytest.fixture
def strict(request, clock):
    """A module sets ``MARKER``, and may set ``STRICT_OPTIONS`` for what it tests (DPoP, say)."""
    options = getattr(request.module, "STRICT_OPTIONS", {})
    with StrictAuthServer(clock=clock, access_token_ttl=60.0, token_marker=request.module.MARKER, **options) as server:
        yield server


@pytest.fixture(scope="session")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
