"""A stand-in for the browser, importable by subprocesses (``--authorization-handler tests.login_helpers:browser``).

It is the library's own :func:`mcp_sync_auth.testing.auto_consent_handler`: follow the authorization
endpoint's 302, as a browser would when consent is automatic.
"""

from mcp_sync_auth.testing import auto_consent_handler as browser

__all__ = ["browser"]
