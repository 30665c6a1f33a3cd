"""Benchmarks: mcp_sync_auth against the OAuth clients people use today, measured side by side.

Run ``python -m bench`` (quick, what CI runs) or ``python -m bench --full``. See ``bench/README.md``.
"""
