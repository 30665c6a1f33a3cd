"""No CLI test may see a traceback, whatever it did to the command.

Subprocesses are checked by :mod:`.shell`. For ``main()`` run in the test's own process, everything
it wrote is checked: what a test reads through ``capsys`` (here wrapped), and what nobody read
(pytest's own capture of the test).
"""

import pytest

from .shell import assert_no_traceback


class CheckedCapture:
    """``capsys``, except that every read is first checked for tracebacks."""

    def __init__(self, capture):
        self._capture = capture

    def readouterr(self):
        captured = self._capture.readouterr()
        assert_no_traceback(captured.out, captured.err)
        return captured

    def __getattr__(self, name):
        return getattr(self._capture, name)


@pytest.fixture
def capsys(capsys):
    checked = CheckedCapture(capsys)
    yield checked
    checked.readouterr()  # what the test did not read


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.passed:
        captured = report.capstdout + report.capstderr
        if "Traceback" in captured or "Exception ignored" in captured:
            report.outcome = "failed"
            report.longrepr = f"a traceback reached the output of a CLI test:\n{captured}"
