"""Run a client as a child process and measure it from the outside: wall, CPU and peak RSS (wait4 rusage)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class ChildRun:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    killed: bool
    stdout: str


def run_child(
    args: list[str],
    env: dict[str, str],
    log: Path,
    *,
    kill_when: Callable[[], bool] | None = None,
) -> ChildRun:
    """Start `args`, optionally SIGKILL it once `kill_when()` says so, and reap it with its rusage."""
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        killed = False
        while True:  # wait4 (not poll) so the child's own rusage is ours to read
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if kill_when is not None else 0)
            if pid:
                break
            if kill_when is not None and not killed and kill_when():
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
    cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    return ChildRun(wall, cpu, rss, proc.returncode, killed, log.read_text(errors="replace"))
