"""Methods for the worker tests, importable by the worker process (by module name).

``tests/compare/test_worker.py`` puts this folder on ``sys.path``; the worker process takes
the parent's ``sys.path``, so specs naming ``worker_methods:<function>`` load there too.
"""

import os
import time


class Unpicklable(Exception):
    """An exception that cannot travel back from the worker (it holds a lock)."""

    def __init__(self, message):
        super().__init__(message)
        import threading

        self.lock = threading.Lock()


def die(image, n_phases, **kw):
    """Kill the worker process at once (exit code 3), as a crash would."""
    os._exit(3)


def fail_unpicklable(image, n_phases, **kw):
    """Raise an exception that does not pickle."""
    raise Unpicklable(f"no pickle for a {image.shape} image")


def fail(image, n_phases, **kw):
    """Raise a plain ValueError naming the number of phases."""
    raise ValueError(f"cannot split into {n_phases} phases")


def sleep(image, n_phases, **kw):
    """Take a minute (the test stops the worker long before)."""
    time.sleep(60)


def pid(image, n_phases, **kw):
    """Fail with this process's id in the message (tells which process ran the method)."""
    raise RuntimeError(f"pid {os.getpid()}")
