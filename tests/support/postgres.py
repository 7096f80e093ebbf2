"""A real, throw-away PostgreSQL server on 127.0.0.1 for tests (never a mock).

The server binaries come from ``SARA_PG_BIN`` (a bin directory holding ``initdb``),
``pg_config --bindir``, the newest ``/usr/lib/postgresql/*/bin`` (Debian) or ``initdb`` on PATH;
``make test`` installs Debian's ``postgresql`` where it can (scripts/install-postgres.sh).

Everything lives in one temporary directory: the data directory, the unix socket and the server
log. ``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` system user
(through ``runuser``). It listens only on 127.0.0.1, trusts every connection from there (a test
server holds no secrets) and is tuned for speed, not durability (fsync and friends off).
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

START_TIMEOUT = 60  # seconds for initdb and for pg_ctl to see the server accept connections
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def find_pg_bin() -> Path | None:
    """The bin directory of a PostgreSQL server installation, or None where there is none."""
    env = os.environ.get("SARA_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").is_file() else None
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    return next((c for c in candidates if (c / "initdb").is_file()), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory: ``start()``, ``stop()``, ``restart()``.

    ``url`` is ``postgresql://postgres@127.0.0.1:PORT/postgres``; ``create_database(name)`` makes
    an empty database and returns its URL. ``stop()`` keeps the data (``start()`` again, or
    ``restart()``, brings the same cluster back on the same port); ``close()`` stops the server
    and removes the directory. Also a context manager.
    """

    user = "postgres"
    host = "127.0.0.1"

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_pg_bin()
        if found is None:
            raise FileNotFoundError("no PostgreSQL server binaries (initdb) found")
        self.bin_dir = found
        self.port = _free_port()
        self.dir: Path | None = None
        self.running = False
        self._as_root = os.geteuid() == 0

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None, "the server was never started"
        return self.dir / "data"

    @property
    def log_file(self) -> Path:
        assert self.dir is not None, "the server was never started"
        return self.dir / "server.log"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (creating the cluster at first); return once it takes connections."""
        if self.running:
            return
        if self.dir is None:
            self._init_cluster()
        try:
            self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT), "-l", str(self.log_file))
        except RuntimeError:
            if self._port_taken():  # another process took the port since we picked it
                self.port = _free_port()
                self._write_port()
                self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT), "-l", str(self.log_file))
            else:
                raise
        self.running = True

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended); the data is kept."""
        if not self.running:
            return
        self.running = False
        self._pg_ctl("stop", "-w", "-m", "fast", "-t", str(START_TIMEOUT))

    def restart(self) -> None:
        """Stop and start the same cluster on the same port (for fault tests)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server if it runs and remove its directory; safe to call more than once."""
        try:
            if self.running:
                self.stop()
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (lower-case identifier) and return its URL."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"not a plain lower-case database name: {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` through psql over TCP as the superuser; return its unaligned output."""
        psql = self.bin_dir / "psql"
        cmd = [str(psql) if psql.is_file() else "psql", "-X", "-q", "-A", "-t"]
        cmd += ["-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port), "-U", self.user]
        cmd += ["-d", database, "-c", sql]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=START_TIMEOUT, env=self._env()
        )
        if done.returncode:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def _init_cluster(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sara-pg-"))
        atexit.register(self.close)  # no stray server even if the caller forgets close()
        sock = self.dir / "sock"
        sock.mkdir()
        if self._as_root:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                self.close()
                raise RuntimeError(
                    "running as root, initdb needs the 'postgres' system user "
                    "(Debian's postgresql package creates it)"
                ) from None
            for path in (self.dir, sock):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        try:
            self._run(
                self.bin_dir / "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
            # Appended settings win over initdb's; the files keep their owner.
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# Sara test server\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{sock}'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 100\n"
                    "logging_collector = off\n"
                )
            self._write_port()
            (self.data_dir / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            )
        except BaseException:
            self.close()
            raise

    def _write_port(self) -> None:
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\n")

    def _port_taken(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0

    def _pg_ctl(self, *args: str) -> None:
        self._run(self.bin_dir / "pg_ctl", "-D", str(self.data_dir), *args)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _run(self, program: Path, *args: str) -> None:
        cmd = [str(program), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        try:
            done = subprocess.run(
                cmd,
                cwd=self.dir,  # the postgres user must be able to enter the working directory
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT + 15,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{program.name} timed out: {self._log_tail()}") from exc
        if done.returncode:
            raise RuntimeError(
                f"{program.name} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except (OSError, AssertionError):
            return ""
        return "server log:\n" + "\n".join(lines[-20:])
