"""cupy.cuda stand-in: one synchronous "stream", host-clock events, a fake device."""
import time as _time


class Stream:
    ptr = 0

    def __init__(self, non_blocking=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def synchronize(self):
        pass


def get_current_stream():
    return Stream()


class Event:
    def record(self, stream=None):
        self.t = _time.perf_counter()

    def synchronize(self):
        pass


def get_elapsed_time(start, stop):
    return (stop.t - start.t) * 1e3


class Device:
    id = 0


class runtime:  # noqa: N801 (module in CuPy)
    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"host emulation"}
