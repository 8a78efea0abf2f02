"""Background server processes with pid files: start, find, stop, wait for a port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.errors import MissingToolError, PortInUseError, StartTimeoutError

SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")

# servers started by this process; kept so that a stop can reap them
_spawned: dict[int, subprocess.Popen[bytes]] = {}


def which(tool: str, hint: str) -> str:
    """The path of ``tool``, or MissingToolError with ``hint`` on how to get it."""
    path = shutil.which(tool) or shutil.which(tool, path=os.pathsep.join(SBIN))
    if path is None:
        raise MissingToolError(f"{tool} not found on PATH: {hint}")
    return path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def require_free(host: str, ports: Sequence[int], owner: str, setting: str) -> None:
    for port in ports:
        if port_open(host, port):
            raise PortInUseError(
                f"{owner}: port {port} on {host} is already in use by another process "
                f"(not one started from this stack); stop it, or move imstream with {setting}"
            )


def read_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is still alive, else None."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not alive(pid):
        return None
    return pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        return status != "Z"
    return True


def spawn(argv: Sequence[str], log: Path, pidfile: Path, cwd: Path) -> int:
    """Start ``argv`` detached in its own session, output to ``log`` (last run's: .prev)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():
        log.replace(log.with_name(log.name + ".prev"))
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    _spawned[proc.pid] = proc
    return proc.pid


def stop(pidfile: Path, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group, SIGKILL it after ``timeout_s``; True if one was running."""
    pid = read_pid(pidfile)
    pidfile.unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while alive(pid):
            _reap(pid)
            time.sleep(0.05)
    _reap(pid)
    return True


def kill(pidfile: Path) -> None:
    """SIGKILL at once (fault tests): the process gets no chance to clean up."""
    pid = read_pid(pidfile)
    if pid is not None:
        _signal_group(pid, signal.SIGKILL)
        while alive(pid):
            _reap(pid)
            time.sleep(0.05)
        _reap(pid)


def wait_until(
    ready: Callable[[], bool], *, timeout_s: float, what: str, pid: int, log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive(pid):
            raise StartTimeoutError(f"{what} exited during start-up:\n{tail(log)}")
        time.sleep(0.25)
    raise StartTimeoutError(f"{what} did not answer within {timeout_s:.0f}s:\n{tail(log)}")


def tail(log: Path, lines: int = 25) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {log})"
    return "\n".join(text[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    proc = _spawned.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            del _spawned[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
