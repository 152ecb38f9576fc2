"""The mock OpenAI server in its own process, so its CPU is never counted as the client's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from typing import Any


class MockProcess:
    """`python -m skuforge.testing.mock_openai` on a free port; stats and config over its control routes."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> MockProcess:
        args = [sys.executable, "-m", "skuforge.testing.mock_openai", "--port", "0"]
        for name, value in self.config.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env={**os.environ})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the mock server did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[-1].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        root = self.url.removesuffix("/v1")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(root + path, data=data, method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
            return json.loads(resp.read())

    def stats(self, detail: bool = False) -> dict[str, Any]:
        return self._call("/_stats?detail=1" if detail else "/_stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("/_reset", {})

    def cpu_s(self) -> float:
        """CPU the server has used so far (to show it was not the bottleneck)."""
        import psutil

        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system
