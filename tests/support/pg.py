"""A throwaway PostgreSQL for tests and the demo: initdb in a temp folder, run as the `postgres`
user (PostgreSQL refuses to run as root), on a free loopback TCP port, trust authentication on
127.0.0.1 only, one database created. Stopped and removed afterwards.

    from pg import Postgres
    pg = Postgres()                 # initdb + start + createdb "taina"
    pg.uri                          # "postgresql://postgres@127.0.0.1:PORT/taina"
    pg.restart(down_s=3)            # stop, wait, start again (same data, same port)
    pg.stop(); pg.cleanup()         # or pg.close() for both

From a shell (the C unit tests use this):

    python3 tests/support/pg.py start DIR    # prints the URI; DIR must not exist
    python3 tests/support/pg.py stop DIR     # stops and removes DIR
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MULT = int(os.environ.get("TN_TEST_TIMEOUT_MULT", "1"))
LEAVE = os.environ.get("TEST_LEAVE") == "1"
USER = "postgres"


def pg_bindir():
    """The newest /usr/lib/postgresql/<version>/bin with initdb."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql "
                           "(Debian package postgresql; make deps)")
    return os.path.dirname(found[-1])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One PostgreSQL cluster in a temp folder owned by the `postgres` user."""

    def __init__(self, dbname="taina", base=None, port=None):
        self.bindir = pg_bindir()
        self.dbname = dbname
        self.port = port or _free_port()
        self.as_root = os.geteuid() == 0
        if base:
            os.makedirs(base)
            self.base = base
        else:
            self.base = tempfile.mkdtemp(prefix="taina-pg-")
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "postgres.log")
        os.makedirs(self.sock)
        if self.as_root:
            pw = pwd.getpwnam(USER)
            for p in (self.base, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(self.base, 0o755)
        self._run(["initdb", "-D", self.data, "-U", USER, "--auth=trust", "--encoding=UTF8",
                   "--locale=C", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\n" % self.port)
            f.write("unix_socket_directories = '%s'\n" % self.sock)
            # a test database: durability is not what is tested
            f.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
            f.write("max_connections = 100\nshared_buffers = 32MB\n")
        self.start()
        self._run(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, dbname])
        self.uri = "postgresql://%s@127.0.0.1:%d/%s" % (USER, self.port, dbname)

    def _run(self, argv, check=True):
        cmd = [os.path.join(self.bindir, argv[0])] + argv[1:]
        if self.as_root:
            cmd = ["runuser", "-u", USER, "--"] + cmd
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/",
                           timeout=120 * MULT)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (argv[0], r.returncode,
                                                        r.stdout.decode(errors="replace")))
        return r

    def start(self):
        self._run(["pg_ctl", "-D", self.data, "-l", self.logfile, "-w",
                   "-t", str(60 * MULT), "start"])

    def stop(self, mode="fast"):
        """Stop the server (mode fast: disconnects clients; immediate: like a crash)."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._run(["pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def restart(self, down_s=0.0, mode="fast"):
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def sql(self, query, params=None):
        """Run one statement with psycopg2 (autocommit); rows for a SELECT, else None."""
        import psycopg2
        conn = psycopg2.connect(self.uri)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def cleanup(self):
        if not LEAVE:
            shutil.rmtree(self.base, ignore_errors=True)

    def close(self):
        self.stop()
        self.cleanup()


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        sys.stderr.write("usage: pg.py start|stop DIR\n")
        return 2
    base = os.path.abspath(argv[2])
    if argv[1] == "start":
        pg = Postgres(base=base)
        print(pg.uri)
        return 0
    pg = Postgres.__new__(Postgres)
    pg.bindir, pg.base = pg_bindir(), base
    pg.data = os.path.join(base, "data")
    pg.as_root = os.geteuid() == 0
    pg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
