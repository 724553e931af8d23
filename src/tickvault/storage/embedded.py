"""Private PostgreSQL and Redis servers, started from the installed server binaries.

With no database or Redis URL configured, tickvault runs its own servers with their data under
``<data_dir>/embedded``. They keep running between commands (a second command finds them through
the state file and reuses them) until ``tickvault embedded stop``. As root, PostgreSQL runs as the
``postgres`` OS user (``initdb`` refuses root), in a folder that user owns.

The same classes start throwaway servers for the test suite (``durable=False``: no fsync, no
persistence) so the tests pass on a machine where no server is given.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tickvault.errors import EmbeddedServerError

_PG_GLOB = "/usr/lib/postgresql/*/bin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def find_pg_bindir() -> Path:
    """The newest installed PostgreSQL server's bin folder."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(glob.glob(_PG_GLOB), key=lambda p: int(Path(p).parent.name.split(".")[0]))
    candidates.extend(Path(p) for p in reversed(versions))
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    raise EmbeddedServerError(
        "no PostgreSQL server binaries found (looked for initdb under /usr/lib/postgresql/*/bin); "
        "install them (Debian: apt-get install postgresql) or set TICKVAULT_DATABASE_URL"
    )


@dataclass
class _RunAs:
    """Runs server commands as an unprivileged user when we are root."""

    user: str | None

    def argv(self, cmd: list[str]) -> list[str]:
        if self.user is None:
            return cmd
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", self.user, "--", *cmd]
        return ["su", self.user, "-s", "/bin/sh", "-c", " ".join(cmd)]

    def chown(self, path: Path) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _run_as_for_postgres() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(None)
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise EmbeddedServerError(
            "running as root but there is no 'postgres' OS user to run the embedded PostgreSQL; "
            "create one (useradd -r postgres) or set TICKVAULT_DATABASE_URL"
        ) from None
    return _RunAs("postgres")


class EmbeddedPostgres:
    """One private PostgreSQL cluster in ``root`` listening on 127.0.0.1 only."""

    def __init__(
        self,
        root: Path,
        *,
        durable: bool = True,
        port: int | None = None,
        timescaledb: bool | None = None,
    ) -> None:
        """``timescaledb``: preload the extension (True), never (False), or when its library
        is installed (None)."""
        self.root = root
        self.durable = durable
        self.port = port
        self.timescaledb = timescaledb
        self.bindir = find_pg_bindir()
        self.run_as = _run_as_for_postgres()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str], what: str) -> None:
        out = subprocess.run(self.run_as.argv(cmd), capture_output=True, text=True, check=False)
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
            log = self.root / "postgres.log"
            raise EmbeddedServerError(
                f"embedded PostgreSQL {what} failed: {' / '.join(tail)} (log: {log})"
            )

    def timescaledb_installed(self) -> bool:
        """TimescaleDB's library is installed for this server (and not switched off with
        TICKVAULT_EMBEDDED_TIMESCALEDB=0): it must be preloaded for CREATE EXTENSION to work."""
        if os.environ.get("TICKVAULT_EMBEDDED_TIMESCALEDB", "1") == "0":
            return False
        return (self.bindir.parent / "lib" / "timescaledb.so").exists()

    def running(self) -> bool:
        return (
            self.port is not None
            and (self.data / "postmaster.pid").exists()
            and _port_open(self.port)
        )

    def start(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            self.run_as.chown(self.root)
            initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres"]
            initdb += ["-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"]
            if not self.durable:
                initdb.append("--no-sync")
            self._run(initdb, "initdb")
        if self.port is None:
            self.port = free_port()
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        options += " -c max_connections=200 -c shared_buffers=256MB"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        preload = self.timescaledb_installed() if self.timescaledb is None else self.timescaledb
        if preload:
            options += " -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
        self.run_as.chown(self.root)
        log = self.root / "postgres.log"
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w"]
        self._run([*pg_ctl, "-t", "60", "-o", options, "start"], "start")
        return self.url

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        pg_ctl = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        self._run(pg_ctl, "stop")


class EmbeddedRedis:
    """One private Redis server in ``root`` on 127.0.0.1 (AOF persistence when durable)."""

    def __init__(self, root: Path, *, durable: bool = True, port: int | None = None) -> None:
        self.root = root
        self.durable = durable
        self.port = port
        binary = shutil.which("redis-server")
        if binary is None:
            raise EmbeddedServerError(
                "redis-server not found; install it (Debian: apt-get install redis-server) "
                "or set TICKVAULT_REDIS_URL"
            )
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running(self) -> bool:
        return self.port is not None and _port_open(self.port)

    def start(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        cmd = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.root),
        ]
        cmd += ["--protected-mode", "yes", "--logfile", str(self.root / "redis.log")]
        if self.durable:
            cmd += ["--appendonly", "yes", "--save", "900 1"]
        else:
            cmd += ["--appendonly", "no", "--save", ""]
        # Own session: the server outlives the command that started it.
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"embedded Redis did not start on port {self.port} "
                    f"(log: {self.root / 'redis.log'})"
                )
            time.sleep(0.02)
        (self.root / "redis.pid").write_text(str(self.process.pid))
        return self.url

    def stop(self) -> None:
        pid_file = self.root / "redis.pid"
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        elif pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), 15)
        pid_file.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_embedded(data_dir: Path, *, postgres: bool = True, redis: bool = True) -> dict[str, str]:
    """Start (or find running) the embedded servers under ``data_dir``; return their URLs.

    Keys of the result: ``database_url`` and/or ``redis_url``. Safe to call from several
    processes at once: a file lock serializes start-up, and a state file records the ports.
    """
    root = data_dir / "embedded"
    state_file = root / "state.json"
    with _locked(root / ".lock"):
        state: dict[str, int] = json.loads(state_file.read_text()) if state_file.exists() else {}
        urls: dict[str, str] = {}
        if postgres:
            pg = EmbeddedPostgres(root / "postgres", port=state.get("postgres_port"))
            if not pg.running():
                if pg.port is not None and _port_open(pg.port):
                    pg.port = None  # somebody else took our old port
                pg.start()
            state["postgres_port"] = pg.port or 0
            urls["database_url"] = pg.url
        if redis:
            rd = EmbeddedRedis(root / "redis", port=state.get("redis_port"))
            if not rd.running():
                rd.port = None
                rd.start()
            state["redis_port"] = rd.port or 0
            urls["redis_url"] = rd.url
        state_file.write_text(json.dumps(state))
    return urls


def stop_embedded(data_dir: Path) -> list[str]:
    """Stop the embedded servers under ``data_dir``; returns what was stopped."""
    root = data_dir / "embedded"
    state_file = root / "state.json"
    if not state_file.exists():
        return []
    stopped: list[str] = []
    with _locked(root / ".lock"):
        state = json.loads(state_file.read_text())
        pg = EmbeddedPostgres(root / "postgres", port=state.get("postgres_port"))
        if (pg.data / "postmaster.pid").exists():
            pg.stop()
            stopped.append("postgres")
        rd = EmbeddedRedis(root / "redis", port=state.get("redis_port"))
        if (rd.root / "redis.pid").exists():
            rd.stop()
            stopped.append("redis")
        state_file.unlink()
    return stopped
