"""A throwaway PostgreSQL server for the tests, in a temporary folder.

Found through ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin`` (Debian's layout;
``make test`` installs Debian's ``postgresql`` package when it runs as root with
``apt-get``). PostgreSQL refuses to run as root, so as root the server runs as the
unprivileged system user ``panen_pg`` (created with ``useradd`` when missing) through
``runuser``. It listens only on a Unix socket in its own folder (no TCP port), trusts
local connections, skips fsync (a test server), and is stopped and removed at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

USER = "panen_pg"


class Unavailable(Exception):
    """PostgreSQL cannot be found or started here (the reason is the message)."""


def bindir() -> Path:
    candidates = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)]
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise Unavailable("PostgreSQL is not installed (no initdb and pg_ctl; `make test` installs Debian's "
                      "postgresql package when it runs as root with apt-get)")


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


class PostgresServer:
    """``start()``, then :attr:`url` names database ``panen``; :meth:`new_database` gives an empty one; ``stop()``."""

    def __init__(self) -> None:
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="panen-pg-"))
        self.data = self.root / "data"
        self.socket = self.root  # a short path: Unix socket names are limited to ~107 bytes
        self.as_root = os.geteuid() == 0
        self._count = 0
        self._admin = None  # a connection to the maintenance database, for CREATE DATABASE

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", USER, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def start(self) -> "PostgresServer":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self.as_root:
            if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
                made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                       USER], capture_output=True, text=True)
                if made.returncode != 0:
                    raise Unavailable(f"cannot create the user {USER} to run PostgreSQL as: {made.stderr.strip()}")
            if not shutil.which("runuser"):
                raise Unavailable("running as root without runuser: cannot start PostgreSQL as another user")
            shutil.chown(self.root, USER)
        os.chmod(self.root, 0o755)
        init = self._run("initdb", "-D", str(self.data), "-U", "panen", "-A", "trust", "-E", "UTF8",
                         "--no-sync", "--locale=C")
        if init.returncode != 0:
            raise Unavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-500:]}")
        options = f"-c listen_addresses='' -k {self.socket} -c fsync=off -c full_page_writes=off"
        started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w",
                            "-t", "60", "start", timeout=90)
        if started.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-500:] if (self.root / "log").exists() else ""
            raise Unavailable(f"PostgreSQL did not start: {(started.stderr or started.stdout).strip()[-300:]} {log}")
        made = self._run("createdb", "-h", str(self.socket), "-U", "panen", "panen")
        if made.returncode != 0:
            raise Unavailable(f"createdb failed: {made.stderr.strip()}")

    @property
    def url(self) -> str:
        """Database ``panen`` (its ``public`` schema)."""
        return f"postgresql+psycopg://panen@/panen?host={self.socket}"

    def new_database(self, name: str | None = None) -> str:
        """An empty database of its own, as a URL: a new schema of database ``panen`` that the
        URL puts first on the search path (a schema costs nothing; a database a second)."""
        if self._admin is None:
            import psycopg

            self._admin = psycopg.connect(host=str(self.socket), user="panen", dbname="panen", autocommit=True)
        if name is None:
            self._count += 1
            name = f"t{self._count}"
        self._admin.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url}&options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
