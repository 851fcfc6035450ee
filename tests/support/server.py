"""Start the real `parley serve` as a child process on a free loopback port."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support.ports import free_low_port as free_port

__all__ = ["ServerProcess", "TlsServer", "free_port"]

PARLEY = str(Path(sys.executable).with_name("parley"))


class ServerProcess:
    """One `parley serve` process; restartable on the same port and data dir."""

    def __init__(
        self,
        data_dir: Path,
        args: Sequence[str] = (),
        port: int | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.port = port or free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/chat"

    def command(self) -> list[str]:
        cmd = [PARLEY, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        # OWASP's argon2id minimum: a tenth of the CPU of the default profile for each of the
        # thousands of accounts the suite makes (a test that passes its own profile wins)
        cmd += ["--data", str(self.data_dir), "--hash-profile", "owasp", *self.args]
        if self.tls:
            cmd += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        return cmd

    def start(self, timeout: float = 20.0, verify: str | bool = False) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"parley exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", verify=verify, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"parley did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the crash the durability tests simulate."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


# A server on HTTPS and WSS, and a client context that trusts it (the `tls_server` fixture).
TlsServer = tuple[ServerProcess, ssl.SSLContext]
