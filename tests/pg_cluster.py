"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary directory, on a
free loopback port, started once per test session and stopped at its end.

PostgreSQL refuses to run as root; as root the cluster runs as the ``postgres`` user (Debian's
package creates it). Without the binaries (``apt-get install postgresql``, see
scripts/install-stack.sh) the tests that need it are skipped, saying so.

    from tests.pg_cluster import postgres_url  # the session fixture, a DSN per test database
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_databases = itertools.count(1)


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    def __init__(self, root: Path, *, initdb: str, pg_ctl: str) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._initdb = initdb
        self._pg_ctl = pg_ctl
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(self._initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(self._pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


_cluster: PgCluster | None = None


def _shared_cluster(config: pytest.Config) -> PgCluster:
    """One cluster per session, however many test modules import the fixture."""
    global _cluster
    if _cluster is None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: "
                        "apt-get install postgresql, or run scripts/install-stack.sh")  # fmt: skip
        root = Path(tempfile.mkdtemp(prefix="pg-test-"))
        root.chmod(0o755)
        cluster = PgCluster(root, initdb=initdb, pg_ctl=pg_ctl)
        cluster.start()
        config.add_cleanup(_stop_shared)
        _cluster = cluster
    return _cluster


def _stop_shared() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database in the session's cluster."""
    yield _shared_cluster(request.config).new_database()
