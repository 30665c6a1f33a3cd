"""Fleet tests: many simulated hosts sharing one Redis (the fleet token store, issue 11).

A host (:class:`tests.fleet.hosts.Host`) is a group of processes with its own HOME, cache and
temporary folders (no file shared with another host) that reaches Redis only through its own
loopback forwarder (:class:`tests.fleet.forwarder.Forwarder`), so a test can cut, delay or freeze
one host's link, or stop one of its processes. The ``fleet`` fixture (``tests/fleet/conftest.py``)
gives three hosts on the ``redis_server`` fixture; ``fleet_factory(hosts=N)`` gives other sizes.
"""
