import pytest

from .hosts import Fleet


@pytest.fixture
def fleet_factory(tmp_path, redis_server):
    """``fleet_factory(hosts=N)``: a fleet of N hosts on ``redis_server`` (each under a folder of its
    own in ``tmp_path``); every one is closed at teardown, its processes killed."""
    made = []

    def make(hosts=3):
        fleet = Fleet(tmp_path / f"fleet-{len(made)}", redis_server, hosts=hosts)
        made.append(fleet)
        return fleet

    yield make
    failure = None
    for fleet in reversed(made):
        try:
            fleet.close()
        except Exception as exc:  # close them all, then say what went wrong
            failure = failure or exc
    if failure is not None:
        raise failure


@pytest.fixture
def fleet(fleet_factory):
    """Three hosts (``a, b, c = fleet``), each with its own folders and its own link to ``redis_server``."""
    return fleet_factory()
