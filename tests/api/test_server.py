"""The launcher (api.server), as real processes: with several workers each listens on a socket of
its own, so connections opened together spread over them; a worker that dies is replaced;
SIGTERM stops them all; a port already taken is one clear failure, not a restart loop."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.server import QUICK_DEATH, ServeOptions, worker_cpus
from tests.server import children_of, free_port

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="a socket per worker is the Linux launcher's"
)


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the IPv4 sockets listening on ``port`` (state 0A in /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _workers(supervisor: int, port: int) -> list[int]:
    """The supervisor's children that listen on ``port``: its workers."""
    listening = _listening_inodes(port)
    return [pid for pid in children_of(supervisor) if _socket_inodes(pid) & listening]


def _get_pid(sock: socket.socket) -> int:
    sock.sendall(b"GET /pid HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.split(b"\r\n\r\n", 1)[1]:
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return int(answer.split(b"\r\n\r\n", 1)[1])


def _wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            return _get_pid(sock) > 0
    except OSError:
        return False


@pytest.fixture
def launcher() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.server",
            "tests.server:pid_app",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
            "--cpu-affinity",
            "auto",
        ]
    )
    try:
        _wait_for(lambda: _answers(port) and len(_workers(proc.pid, port)) == 2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def test_each_worker_listens_on_a_socket_of_its_own_and_connections_spread(
    launcher: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = launcher
    workers = _workers(proc.pid, port)
    assert len(workers) == 2
    owned = [_socket_inodes(pid) & _listening_inodes(port) for pid in workers]
    assert all(len(inodes) == 1 for inodes in owned) and owned[0] != owned[1]
    # 32 keep-alive connections opened together, as a load test's or a proxy's pool: with one
    # shared socket, whichever worker woke first took most of them (2/30 was seen).
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(32)]
    try:
        served = collections.Counter(_get_pid(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert set(served) == set(workers)
    assert max(served.values()) <= 26, (
        served
    )  # a binomial(32, 1/2) split goes past 26 once in 8,000


def test_a_worker_that_dies_is_replaced_and_sigterm_stops_them_all(
    launcher: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = launcher
    first, second = _workers(proc.pid, port)
    cpu_of_first = os.sched_getaffinity(first)
    time.sleep(QUICK_DEATH)  # a worker dying sooner after its start would stop everything
    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: first not in children_of(proc.pid) and len(_workers(proc.pid, port)) == 2)
    _wait_for(lambda: _answers(port))
    workers = _workers(proc.pid, port)
    assert second in workers
    (replacement,) = set(workers) - {second}
    assert os.sched_getaffinity(replacement) == cpu_of_first  # it takes its slot's CPU
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not _answers(port)


def test_a_port_already_taken_is_a_startup_failure() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "api.server", "tests.server:pid_app", "--port", str(port)]
            + ["--workers", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 3
    assert "cannot bind" in run.stderr


def test_an_app_that_cannot_load_stops_the_server_instead_of_restarting_workers() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "api.server", "tests.server:no_such_app", "--workers", "2"]
        + ["--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3
    assert "could not start" in run.stderr


_TWO_CPUS = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs this process may use"
)


@_TWO_CPUS
def test_each_worker_runs_on_a_cpu_of_its_own(
    launcher: tuple[subprocess.Popen[bytes], int],
) -> None:
    """Every thread of a worker stays on one CPU (GIL hand-overs without cross-core wake-ups:
    docs/benchmarks.md, "CPU affinity"), a different one for each worker; the supervisor
    itself is not held."""
    proc, port = launcher
    workers = _workers(proc.pid, port)
    cpus = [os.sched_getaffinity(pid) for pid in workers]
    assert all(len(c) == 1 for c in cpus) and cpus[0] != cpus[1], cpus
    assert os.sched_getaffinity(proc.pid) == os.sched_getaffinity(0)
    # threads started later (the request threads) inherit it
    for pid in workers:
        for task in Path(f"/proc/{pid}/task").iterdir():
            status = (task / "status").read_text()
            allowed = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list"))
            assert allowed.split()[-1] == str(next(iter(os.sched_getaffinity(pid))))


@_TWO_CPUS
@pytest.mark.parametrize(
    ("workers", "affinity", "held"),
    [(1, "auto", True), (2, "off", False), (1, "off", False), (2, None, False)],
)
def test_cpu_affinity_off_leaves_workers_free_and_one_worker_is_held_too(
    workers: int, affinity: str | None, held: bool
) -> None:
    """Off by default (a host shared with other services: the operator chooses)."""
    port = free_port()
    chosen = ["--cpu-affinity", affinity] if affinity else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.server", "tests.server:pid_app", "--port", str(port)]
        + ["--workers", str(workers), "--log-level", "warning", *chosen]
    )
    try:
        _wait_for(lambda: _answers(port))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            serving = _get_pid(sock)
        allowed = os.sched_getaffinity(serving)
        if held:
            assert len(allowed) == 1
        else:
            assert allowed == os.sched_getaffinity(0)
    finally:
        proc.terminate()
        proc.wait(30)


def test_worker_cpus_only_where_each_worker_can_have_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def auto(workers: int) -> ServeOptions:
        return ServeOptions(app="x:y", workers=workers, cpu_affinity="auto")

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert worker_cpus(auto(2)) == [3, 2]
    assert worker_cpus(auto(4)) == [3, 2, 1, 0]
    assert worker_cpus(auto(5)) == [None] * 5  # two would share a CPU
    assert worker_cpus(ServeOptions(app="x:y", workers=2)) == [None, None]  # off by default
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {7})
    assert worker_cpus(auto(1)) == [None]  # nothing to choose
