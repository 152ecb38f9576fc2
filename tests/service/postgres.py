"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, a free port, a socket dir beside it.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as an unprivileged system user
(`skuforge-pg`, created with useradd when missing) that owns the data folder. Nothing is skipped: when the
server cannot start, the test fails with the server's log.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PG_USER = "skuforge-pg"


def _binary(name: str) -> str:
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # apt-get install postgresql
    for folder in [Path("/usr/local/bin"), *debian]:
        path = folder / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"PostgreSQL's '{name}' is not installed: apt-get install postgresql (or put it on PATH)."
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0 and "already exists" not in made.stderr:
            pytest.fail(f"Cannot create the user {PG_USER} to run PostgreSQL as: {made.stderr}")
    return ["runuser", "-u", PG_USER, "--"]


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="skuforge-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = _free_port()
        self.prefix = _as_user()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        os.chmod(self.root, 0o755)
        if self.prefix:
            shutil.chown(self.root, user=PG_USER)
        init = self._run(
            _binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = self._run(
            _binary("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            pytest.fail(f"PostgreSQL did not start:\n{started.stdout}\n{started.stderr}\n{log[-3000:]}")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t{int(time.time() * 1000) % 10**10}{os.getpid() % 1000}{_free_port() % 1000}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
