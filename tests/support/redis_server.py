"""A throwaway redis-server: no persistence, a temp dir, a free loopback port.

Used by the test fixtures and by the multi-node benchmark (bench/parley_bench/suite.py).
Without persistence, `stop()` + `start()` restarts it on the same port, empty, as a real
Redis restart without persistence would be.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_low_port

__all__ = ["RedisServer", "redis_bin"]


def redis_bin() -> str | None:
    """Path of redis-server or None."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    return binary if Path(binary).exists() else None


class RedisServer:
    def __init__(self) -> None:
        binary = redis_bin()
        if binary is None:
            raise RuntimeError("redis-server not found: run `make system-deps`")
        self.binary = binary
        self.port = free_low_port()
        self.root = Path(tempfile.mkdtemp(prefix="parley-redis-"))
        self.log_path = self.root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def start(self, timeout: float = 20.0) -> RedisServer:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.root)]
        cmd += ["--logfile", str(self.log_path), "--daemonize", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log()}")
            if self._ping():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{self.log()}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGKILL: whatever was in flight is gone, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
