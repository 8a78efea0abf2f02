"""py-spy on a running process during a scenario's measured phase.

``py-spy record --nonblocking`` samples the process without pausing it and
writes a speedscope file (open it at https://www.speedscope.app); the summary
kept with the result is where the samples were: the functions and the source
files holding most samples on top of the stack (self) and anywhere on it
(inclusive). Idle threads are not sampled, so samples follow CPU time.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

TOP = 20
REPO = str(Path(__file__).resolve().parent.parent) + "/"
STDLIB = sysconfig.get_paths()["stdlib"]


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recording:
    def __init__(self, pid: int, output: Path, duration_s: float, rate: int = 100) -> None:
        self.pid = pid
        self.output = output
        self.duration_s = max(1, int(duration_s))
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None
        self.error = ""

    def start(self) -> None:
        binary = py_spy()
        if binary is None:
            self.error = "py-spy is not installed"
            return
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(self.pid),
                "--format",
                "speedscope",
                "--output",
                str(self.output),
                "--duration",
                str(self.duration_s),
                "--rate",
                str(self.rate),
                "--nonblocking",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    async def finish(self) -> dict[str, Any]:
        """Wait for py-spy to write its file; the file and what it found."""
        if self.proc is None:
            return {"error": self.error}
        try:
            out, _ = await asyncio.to_thread(self.proc.communicate, None, self.duration_s + 60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {"error": "py-spy did not finish"}
        if self.proc.returncode != 0 or not self.output.exists():
            return {"error": out.decode(errors="replace")[-1000:]}
        return {"file": self.output.name, "rate_hz": self.rate, **summarize(self.output)}


def summarize(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())
    frames = data["shared"]["frames"]
    self_by_fn: Counter[int] = Counter()
    incl_by_fn: Counter[int] = Counter()
    self_by_file: Counter[str] = Counter()
    total = 0.0
    samples = 0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            total += weight
            samples += 1
            self_by_fn[stack[-1]] += weight
            self_by_file[_where(frames[stack[-1]])] += weight
            for index in set(stack):
                incl_by_fn[index] += weight

    def share(n: float) -> float:
        return round(100 * n / total, 1) if total else 0.0

    def named(counter: Counter[int]) -> list[dict[str, Any]]:
        return [{"frame": _frame(frames[i]), "pct": share(n)} for i, n in counter.most_common(TOP)]

    return {
        "samples": samples,
        "sampled_s": round(total, 2),
        "self": named(self_by_fn),
        "inclusive": named(incl_by_fn),
        "self_by_file": [{"file": f, "pct": share(n)} for f, n in self_by_file.most_common(TOP)],
    }


def _frame(frame: dict[str, Any]) -> str:
    return f"{frame.get('name', '?')} ({_where(frame)}:{frame.get('line', '?')})"


def _where(frame: dict[str, Any]) -> str:
    """A source file as a short path: after site-packages, the repository or the stdlib."""
    path = str(frame.get("file", "?"))
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(REPO):
        return path[len(REPO) :]
    if path.startswith(STDLIB):
        return "stdlib" + path[len(STDLIB) :]
    return path
