"""pytest wiring for the confluent-kafka compat tests: one fresh broker per
backend pair (session-scoped, so every test of a backend shares it), and a hook
that writes each test's outcome as a PASS/FAIL line to $COMPAT_RESULTS for
run_all.sh (pytest -v shows them on the terminal)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


class Brokers:
    """One broker per backend pair, started when a test first asks for it and
    kept for the whole session, so that pytest's test order never restarts one."""

    def __init__(self):
        self.started = {}
        self.failed = {}

    def get(self, backend):
        if backend in self.failed:
            pytest.fail(self.failed[backend], pytrace=False)
        if backend not in self.started:
            b = harness.new_broker(backend, "py-" + backend)
            try:
                b.start()
            except harness.BrokerError as e:
                self.failed[backend] = str(e)
                pytest.fail(str(e), pytrace=False)
            self.started[backend] = b
        b = self.started[backend]
        if not b.running():
            pytest.fail("broker %s exited (status %s); log %s:\n%s"
                        % (b.name, b.proc.returncode, b.log_path, b.log_tail()), pytrace=False)
        return b


@pytest.fixture(scope="session")
def brokers(request):
    bs = Brokers()
    yield bs
    keep = request.session.testsfailed > 0
    for b in bs.started.values():
        b.cleanup(keep=keep)
        if keep:
            print("\nbroker %s: kept %s (log %s)" % (b.name, b.dir, b.log_path), file=sys.stderr)


@pytest.fixture(params=harness.backends())
def broker(request, brokers):
    return brokers.get(request.param)


def _scenario_name(nodeid):
    return "python/" + nodeid.split("::", 1)[-1]


def pytest_runtest_logreport(report):
    name = _scenario_name(report.nodeid)
    if report.when == "call":
        if report.passed:
            harness.record("PASS", name, echo=False)
        elif report.failed:
            harness.record("FAIL", name, echo=False)
    elif report.failed:
        harness.record("FAIL", "%s (%s)" % (name, report.when), echo=False)
