"""Fixtures for the integration tests: each test that starts a daemon gets it
stopped in teardown, where a daemon that died, exited non-zero or logged an
unexpected error fails the test."""

import os

import pytest

import xendm
import xenstored as xenstored_mod


def pytest_report_header(config):
    return "xen-dm under test: %s" % xendm.binary()


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    path = xendm.binary()
    if not os.access(path, os.X_OK):
        pytest.fail("no xen-dm binary at %s (build it, or set XEN_DM)" % path, pytrace=False)


class DaemonFactory:
    def __init__(self):
        self.started = []

    def __call__(self, args=(), wait=True, **kw):
        d = xendm.Daemon(args, **kw)
        self.started.append(d)
        d.start(wait=wait)
        return d

    def stop_all(self):
        problems = []
        for d in reversed(self.started):
            try:
                d.stop()
            except AssertionError as e:
                problems.append(str(e))
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def start_daemon():
    """start_daemon(args, qtest=..., qmp=..., libxl=..., wait=True, ...) -> a
    running Daemon (see xendm.Daemon); all are stopped and checked at the end."""
    factory = DaemonFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def qtest_daemon(start_daemon):
    """A daemon with a qtest socket and a QMP socket (-m 16)."""
    return start_daemon(["-m", "16"], qtest=True, qmp=True)


@pytest.fixture
def qmp_daemon(start_daemon):
    return start_daemon(qmp=True)


@pytest.fixture
def xenstored():
    """A real xenstored (xenstored.Xenstored), started in a fresh directory
    and removed afterwards. Skips the test only if Debian's xenstored cannot
    be fetched; fails it if the daemon died during the test."""
    try:
        daemon = xenstored_mod.Xenstored()
    except xenstored_mod.Unavailable as e:
        pytest.skip(str(e))
    try:
        daemon.start()
        yield daemon
        died = not daemon.alive()
        log = daemon.log()
    finally:
        daemon.cleanup()
    if died:
        pytest.fail("xenstored died during the test:\n" + log, pytrace=False)
