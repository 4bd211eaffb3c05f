"""A throwaway PostgreSQL cluster per test module (`postgres` fixture), as a pytest plugin
(`pytest_plugins` in tests/conftest.py) so that every module can ask for it without importing it.
PostgreSQL refuses to run as root, so as root it runs as Debian's `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.stack import free_port

PASSWORD = "trident-test-password"  # noqa: S105 (a throwaway cluster on 127.0.0.1)


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    return found[-1]


@dataclass
class Postgres:
    """A throwaway cluster: data and socket under `folder`, listening on 127.0.0.1:`port`."""

    folder: Path
    port: int

    @property
    def as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://trident:{PASSWORD}@127.0.0.1:{self.port}/trident"

    def run(self, *argv: str) -> None:
        subprocess.run([*self.as_owner, *argv], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.folder / "data"), str(self.folder / "log")
        self.run(postgres_bin("pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self.run(postgres_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def sql(self, statement: str, database: str = "postgres") -> list[str]:
        """The statement's rows, one line each (`psql -At`), run as the superuser."""
        psql = [postgres_bin("psql"), "-h", str(self.folder), "-p", str(self.port), "-U", "postgres"]
        done = subprocess.run(
            [*self.as_owner, *psql, "-d", database, "-At", "-c", statement],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout.split()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    folder = Path(tempfile.mkdtemp(prefix="trident-pg-"))
    cluster = Postgres(folder, free_port())
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    try:
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256"]
        cluster.run(postgres_bin("initdb"), "-D", str(folder / "data"), "-U", "postgres", *auth)
        cluster.start()
        cluster.sql(f"CREATE USER trident PASSWORD '{PASSWORD}'")
        cluster.sql("CREATE DATABASE trident OWNER trident")
        yield cluster
    finally:
        stop = [postgres_bin("pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"]
        subprocess.run([*cluster.as_owner, *stop], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
