"""The Redis token store, for fleets of hosts (needs the ``[redis]`` extra): the lease protocol's
scripts (:mod:`.scripts`), the lease and its watchdog (:mod:`.lease`), the change feed waiters sleep
on (:mod:`.changes`), and the store (:mod:`.store`)."""

from .store import RedisReservation, RedisTokenStore

__all__ = ["RedisReservation", "RedisTokenStore"]
