"""Cycles of calls across a fleet: every thread of every process of every host calls at once."""

import os

from ..workers import drive_cycles, run_cycles


def start_on(host, spawn, target, args, **environment):
    """A spawned process of ``host``: it starts with the host's environment (HOME, caches, and a
    store URL through the host's own link, plus ``environment``), which a spawned child takes from
    os.environ."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(host.env(**environment))
    try:
        process = spawn.Process(target=target, args=args)
        process.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return process


def drive_fleet(spawn, fleet, clock, config, *, per_host, between_cycles):
    """``config["cycles"]`` cycles of ``config["threads"]`` threads in ``per_host`` processes on each
    host; ``between_cycles()`` runs before each. The outcomes of every call, counted."""
    processes = per_host * len(fleet)
    barrier = spawn.Barrier(processes + 1)
    results = spawn.Queue()
    config = dict(config, store_from_environment=True)
    workers = [
        start_on(host, spawn, run_cycles, (config, clock, barrier, results)) for host in fleet for _ in range(per_host)
    ]
    return drive_cycles(workers, barrier, results, config["cycles"], between_cycles)
