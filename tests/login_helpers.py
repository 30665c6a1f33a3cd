"""A stand-in for the browser, importable by subprocesses (``--authorization-handler tests.login_helpers:browser``)."""

import requests


def browser(url):
    """What a browser does with the authorization URL when consent is automatic: follow the 302."""
    answer = requests.get(url, allow_redirects=False, timeout=10)
    if answer.status_code != 302:
        raise RuntimeError(f"the authorization endpoint answered {answer.status_code}: {answer.text[:200]}")
    return answer.headers["Location"]
