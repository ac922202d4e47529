#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The Python package (lib/client/python, `kite`) as a user installs it and
against a real kited: a virtual environment of Debian's Python with its
system packages (python3-pytest), `pip install --no-build-isolation
--no-index` of the package from the repository (no network), then its
pytest suite run inside the test's network namespace with KITE_SERVER
pointing at the node and KITE_LIBKITE at this build's libkite.

Run: python3 test_python.py --kited PATH --cli PATH --build BUILD_DIR
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
PKG = os.path.join(ROOT, 'lib', 'client', 'python')
# Debian's interpreter: its python3-pytest is in its system site-packages.
DEBIAN_PY = '/usr/bin/python3'


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    libkite = kt.need_libkite(t)
    if not os.access(DEBIAN_PY, os.X_OK):
        raise kt.Skip('%s missing' % DEBIAN_PY)
    if subprocess.run([DEBIAN_PY, '-c', 'import pytest, venv, ensurepip'],
                      capture_output=True).returncode != 0:
        raise kt.Skip('python3-pytest or python3-venv not installed')
    tmp = tempfile.mkdtemp(prefix='kite-py-')
    t.on_cleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
    venv = os.path.join(tmp, 'venv')
    py = os.path.join(venv, 'bin', 'python')

    def c_install():
        kt.sh([DEBIAN_PY, '-m', 'venv', '--system-site-packages', venv])
        # A copy: pip builds in the source folder, which is not ours to litter.
        src = os.path.join(tmp, 'src')
        shutil.copytree(PKG, src, ignore=shutil.ignore_patterns('__pycache__', '*.egg-info',
                                                                 'build'))
        p = subprocess.run([py, '-m', 'pip', 'install', '--no-build-isolation', '--no-index',
                            '--no-deps', '--quiet', src], capture_output=True, text=True,
                           timeout=300)
        kt.check(p.returncode == 0, 'pip install: %s%s' % (p.stdout[-2000:], p.stderr[-2000:]))
        p = subprocess.run([py, '-c', 'import kite, os; print(os.path.dirname(kite.__file__))'],
                           capture_output=True, text=True, cwd=tmp,
                           env=dict(os.environ, KITE_LIBKITE=libkite))
        kt.check(p.returncode == 0 and p.stdout.startswith(venv),
                 'import kite from the venv: %r %r' % (p.stdout, p.stderr[-1000:]))
    t.case('pip install from the repository into a venv (no network)', c_install)

    topo = kt.Topology(t).up()
    # Nothing trusted, as kited starts by default: the package's clients validate with
    # cookies, and the first request of each (an mg N that may win) is weighed by the bound.
    kd = kt.Kited(t, topo, trusted=None).start()

    def c_pytest():
        env = dict(os.environ, KITE_SERVER=topo.kited_ip, KITE_LIBKITE=libkite,
                   PYTHONDONTWRITEBYTECODE='1')
        p = subprocess.run([topo.ip_tool, 'netns', 'exec', topo.ns, py, '-m', 'pytest', '-q',
                            '-p', 'no:cacheprovider', os.path.join(PKG, 'tests')],
                           capture_output=True, text=True, cwd=tmp, env=env, timeout=300)
        t.log(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else '(no output)')
        kt.check(p.returncode == 0, 'pytest failed:\n%s\n%s' % (p.stdout[-6000:],
                                                                 p.stderr[-2000:]))
        m = re.search(r'(\d+) passed', p.stdout)
        kt.check(m is not None and 'skipped' not in p.stdout,
                 'pytest ran nothing or skipped: %s' % p.stdout[-500:])
    t.case('the package\'s pytest suite against kited', c_pytest)
    t.case('kited still running', lambda: kt.check(kd.alive(), 'kited exited:\n' + kd.tail()))


def extra(ap):
    ap.add_argument('--build', help='the build folder (default: the one kited comes from)')


if __name__ == '__main__':
    kt.run('python', body, extra)
