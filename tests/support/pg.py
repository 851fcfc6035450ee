"""A throwaway PostgreSQL server: initdb + pg_ctl in a temp dir, on a free loopback port.

Used by the test fixtures and by the multi-node benchmark (bench/parley_bench/suite.py).
PostgreSQL refuses to run as root, so when run as root the server runs as the `postgres`
user (`runuser -u postgres --`) in a directory it owns. The binaries are found on PATH or in
Debian's /usr/lib/postgresql/NN/bin (`make system-deps` installs them when missing).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_low_port

__all__ = ["PgServer", "pg_bin"]

_db_names = itertools.count(1)


def pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL program (initdb, pg_ctl, ...) or None."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


class PgServer:
    """One PostgreSQL cluster; `stop()` + `start()` restarts it on the same port and data."""

    def __init__(self) -> None:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL binaries not found: run `make system-deps`")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.port = free_low_port()
        self.user = "parley"
        # not under pytest's tmp dirs: they are 0700 root, which the postgres user cannot enter
        self.root = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            [
                self.initdb,
                *("-D", str(self.data), "-U", self.user, "--auth=trust"),
                *("-E", "UTF8", "--no-sync", "--locale=C"),
            ]
        )
        self.running = False

    def _run(self, cmd: list[str], timeout: float = 60) -> None:
        subprocess.run(
            self.as_user + cmd,
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
        )

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgServer:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            " -c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            [
                self.pg_ctl,
                *("-D", str(self.data), "-l", str(self.log_path), "-o", options),
                *("-w", "-t", "60", "start"),
            ],
            timeout=90,
        )
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """`fast`: roll back sessions and shut down cleanly; `immediate`: like a crash."""
        if not self.running:
            return
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])
        self.running = False

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def postmaster_pid(self) -> int:
        """The PostgreSQL server's pid (0 when unknown), for its CPU time."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def create_database(self) -> str:
        """A fresh empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(_db_names)}_{int(time.time() * 1000) % 100000}"

        self.sql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; returns its unaligned output."""
        psql = pg_bin("psql")
        if psql is None:
            raise RuntimeError("psql not found")
        cmd = [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"]
        cmd += ["-p", str(self.port), "-U", self.user, "-d", database, "-c", statement]
        done = subprocess.run(cmd, check=True, timeout=60, capture_output=True, text=True)
        return done.stdout
