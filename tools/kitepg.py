# SPDX-License-Identifier: BSD-3-Clause
"""A private PostgreSQL for Kite's tools and tests: initdb into a fresh
folder, a server on a Unix socket in that folder (no TCP port, nothing
shared with a system cluster), stopped and removed by stop().

    pg = PrivatePostgres().start()
    conn = pg.connect()            # psycopg2, as the superuser, autocommit off
    ...
    pg.stop()

Debian's postgresql package provides the binaries (/usr/lib/postgresql/N/bin);
the server runs as the user 'postgres' (it refuses root). Used by
tools/kite-invalidator's tests, tools/stampede-bench and
tests/integration/test_patterns_pg.py.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def use_debian_python():
    """Debian's python3-psycopg2 lives in /usr/bin/python3's packages: when this
    interpreter (pyenv, a venv without system packages) lacks it, run this
    program again under that one (os.execv: nothing after the call runs)."""
    try:
        import psycopg2  # noqa: F401
        return
    except ImportError:
        pass
    deb = '/usr/bin/python3'
    if os.path.realpath(sys.executable) == os.path.realpath(deb) or not os.access(deb, os.X_OK):
        return
    if subprocess.run([deb, '-c', 'import psycopg2'], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode == 0:
        os.execv(deb, [deb] + sys.argv)


class PostgresMissing(Exception):
    pass


def pg_bin():
    """The newest installed server's binaries folder."""
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'),
                   key=lambda p: int(p.split('/')[4]) if p.split('/')[4].isdigit() else 0)
    if not found:
        raise PostgresMissing('PostgreSQL is not installed (apt-get install postgresql)')
    return os.path.dirname(found[-1])


class PrivatePostgres:
    def __init__(self, user='postgres', port=55432):
        self.bin = pg_bin()
        try:
            self.pw = pwd.getpwnam(user)
        except KeyError as e:
            raise PostgresMissing('no user %r (the postgresql package creates it)' % user) from e
        self.user = user
        self.port = port
        self.dir = None
        self.proc = None

    def _as_user(self, argv, **kw):
        return subprocess.run(['runuser', '-u', self.user, '--'] + argv, **kw)

    def start(self, timeout=30):
        self.dir = tempfile.mkdtemp(prefix='kite-pg-')
        os.chown(self.dir, self.pw.pw_uid, self.pw.pw_gid)
        os.chmod(self.dir, 0o755)  # the socket is reached by root's clients too
        data = os.path.join(self.dir, 'data')
        p = self._as_user([os.path.join(self.bin, 'initdb'), '-D', data, '--auth=trust',
                           '-U', self.user, '-E', 'UTF8', '--locale=C.UTF-8'],
                          capture_output=True, text=True)
        if p.returncode != 0:
            self.stop()
            raise RuntimeError('initdb failed: %s' % p.stderr[-2000:])
        log = open(os.path.join(self.dir, 'postgres.log'), 'w')
        os.chown(log.name, self.pw.pw_uid, self.pw.pw_gid)
        # Sockets only (listen_addresses ''), in our folder; fsync off: a test database.
        # The postmaster itself is our child (not runuser's, which answers a SIGTERM
        # with a SIGKILL 2 s later: a smart shutdown still waiting for its clients was
        # killed, and its shared memory segments stayed in /dev/shm).
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, 'postgres'), '-D', data,
             '-k', self.dir, '-p', str(self.port), '-c', 'listen_addresses=',
             '-c', 'fsync=off', '-c', 'synchronous_commit=off',
             '-c', 'full_page_writes=off', '-c', 'max_connections=200'],
            stdout=log, stderr=subprocess.STDOUT, user=self.pw.pw_uid, group=self.pw.pw_gid,
            extra_groups=[], cwd=self.dir)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                break
            if os.path.exists(os.path.join(self.dir, '.s.PGSQL.%d' % self.port)):
                try:
                    self.connect().close()
                    return self
                except Exception:
                    pass
            time.sleep(0.1)
        tail = open(os.path.join(self.dir, 'postgres.log')).read()[-2000:]
        self.stop()
        raise RuntimeError('PostgreSQL did not start: %s' % tail)

    def dsn(self, dbname='postgres'):
        return 'host=%s port=%d user=%s dbname=%s' % (self.dir, self.port, self.user, dbname)

    def connect(self, autocommit=False):
        import psycopg2  # python3-psycopg2
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = autocommit
        return conn

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            # Fast shutdown (SIGINT): clients are disconnected, and the postmaster removes
            # what it made (its shared memory segments included) before it exits. Then
            # immediate (SIGQUIT), and SIGKILL only as the last resort.
            for sig, wait in ((signal.SIGINT, 15), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
