"""`make run` supervises its services (deploy/local/stack.py, Supervisor): a child that
dies is started again after a backoff that doubles while it keeps dying, and the console
and `supervisor.log` say so. A stand-in child (python -m http.server) plays the service."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from stack import Backoff, ProcessSpec, Stack, StackPorts, Supervisor  # deploy/local

from tests.integration.served import free_port

pytestmark = pytest.mark.integration


def _wait(probe: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_dead_service_is_restarted_with_backoff_and_said_so(tmp_path: Path) -> None:
    port = free_port()
    spec = ProcessSpec("dummy", "http.server", port, "/", args=(str(port), "-b", "127.0.0.1"))
    stack = Stack(env=dict(os.environ), ports=StackPorts(), log_dir=tmp_path)
    console = io.StringIO()
    stack.start([spec], timeout_s=30)
    supervisor = Supervisor(stack, [spec], Backoff(first_s=0.2, max_s=5), console=console)
    try:
        for delay in ("0.2s", "0.4s"):  # it keeps dying: each wait twice the last
            first = stack.processes["dummy"].pid
            os.kill(first, signal.SIGKILL)
            _wait(lambda first=first: supervisor.check() or stack.processes["dummy"].pid != first)
            assert f"dummy exited with code -9; restarting in {delay}" in console.getvalue()
            _wait(lambda: _answers(port))
        log = (tmp_path / "supervisor.log").read_text()
        assert log.count("dummy exited with code -9") == 2
        assert log.count("dummy restarted (pid") == 2
        assert "supervisor: dummy restarted" in console.getvalue()
    finally:
        stack.stop()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_kill_both_take_the_stop_path_even_if_sigint_came_ignored(
    signum: signal.Signals,
) -> None:
    """A shell that starts `make run` in the background hands it SIGINT ignored, and SIGTERM
    kills a Python process outright: either way the services were left running."""
    from stack import _stop_on_signal  # deploy/local

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _stop_on_signal()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises in this thread before the sleep ends
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
