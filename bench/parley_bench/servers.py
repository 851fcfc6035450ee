"""Start, probe and stop the servers under test; read their memory and CPU from /proc."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ServerProc",
    "cpu_seconds",
    "free_port",
    "http_json",
    "machine_busy_seconds",
    "raise_fd_limit",
    "rss_kib",
    "split_cores",
    "wait_for_quiet",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def split_cores() -> tuple[frozenset[int], frozenset[int]] | None:
    """(the server's cores, the generator's) as an outsider measures: the server pinned to
    one core, the load generator to the other; None on a machine with a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return frozenset(cores[:1]), frozenset(cores[1:2])


def raise_fd_limit() -> int:
    """Raise this process's soft open-files limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle, summed over all cores (from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return 0.0
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / _CLK_TCK


async def wait_for_quiet(max_other: float, hold_s: float, wait_s: float) -> float:
    """Wait (at most `wait_s`) until the whole machine used < `max_other` cores for `hold_s`;
    returns the load seen last. Other engineers' test runs share this machine."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        b0 = machine_busy_seconds()
        await asyncio.sleep(hold_s)
        load = (machine_busy_seconds() - b0) / hold_s
        if load < max_other or loop.time() >= deadline:
            return load


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) in seconds."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process (all its threads) in seconds; zeros when gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return 0.0, 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def http_json(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """One blocking JSON request (stdlib only); returns (status, decoded body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = int(resp.status)
    except urllib.error.HTTPError as err:
        raw = err.read()
        status = err.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


class ServerProc:
    """One server under test, as a child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        port: int,
        log_path: Path,
        *,
        ws_path: str = "/",
        parley: bool = False,
        env: dict[str, str] | None = None,
        cpus: frozenset[int] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.port = port
        self.log_path = log_path
        self.ws_path = ws_path
        self.parley = parley
        self.env = env
        self.cwd = cwd
        self.cpus = cpus  # the cores it may run on (None: those of the generator)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                preexec_fn=self._pin,
            )
        return self.proc

    def _pin(self) -> None:
        """In the child, before exec: run on the given cores only."""
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)

    async def start(self, wait_s: float = 30.0) -> None:
        proc = self.spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {proc.returncode}: {self.log_tail()}")
            if await self._ready():
                return
            await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {wait_s} s: {self.log_tail()}")

    async def _ready(self) -> bool:
        if self.parley:
            try:
                status, _ = await asyncio.to_thread(
                    http_json, "GET", f"{self.http_url}/healthz", None, None, 2.0
                )
            except OSError:
                return False
            return status == 200
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 2.0)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def parley_command(data_dir: Path, port: int, extra: Sequence[str] = ()) -> list[str]:
    exe = Path(sys.executable).with_name("parley")
    cmd = [str(exe) if exe.exists() else shutil.which("parley") or "parley"]
    return [
        *cmd,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data",
        str(data_dir),
        "--rate-limit",
        "0",
        "--register-limit",
        "0",
        "--max-unauthenticated-per-address",
        "0",  # the ramp opens thousands of sockets from one address at once
        "--login-limit",
        "0",
        "--hash-queue",
        "0",
        "--action-limits",
        "0",
        "--max-guests-per-address",
        "0",
        *extra,
    ]
