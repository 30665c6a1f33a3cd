import threading

import pytest

from mcp_sync_auth._util.recent import RecentMap


def test_a_full_map_drops_the_oldest_written():
    recent: RecentMap[str, int] = RecentMap(2)
    recent.put("a", 1)
    recent.put("b", 2)
    recent.put("a", 3)  # written again: now the newest
    recent.put("c", 4)
    assert (recent.get("a"), recent.get("b"), recent.get("c"), len(recent)) == (3, None, 4, 2)


def test_writers_at_once_never_pass_the_bound():
    recent: RecentMap[int, int] = RecentMap(16)
    start = threading.Barrier(8)
    largest = []

    def write(base: int) -> None:
        start.wait()
        for n in range(2000):
            recent.put(base * 10_000 + n, n)
            largest.append(len(recent))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(largest) == 16 and len(recent) == 16


def test_an_empty_bound_is_refused():
    with pytest.raises(ValueError):
        RecentMap(0)
