#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Docs: the commands of README.rst and the marked examples of docs/ run as
written, and tools/kite-up, the install layout and kited.service behave as
those pages say.

The whole test runs in namespaces of its own (network, mount, pid), so the
pages' commands run literally as root on "this machine" without touching
it: /run, /var/log and /dev/hugepages are fresh, /usr/local and /etc are
overlays whose writes land in a temporary folder, and every process ends
with the pid namespace. `ninja -C build install` therefore installs into
/usr/local as documented, and the installed programs are on PATH.

Marking an example in a page (an RST comment right before the block):

  .. docs-test: run [skip=PREFIX]
      The block is a bash script (set -e); it must exit 0. Lines that
      start with PREFIX are not run (tools/kite-test: the suite itself).
  .. docs-test: serve until="TEXT" | after=SECONDS [during=N]
      The block's last command is a server: it must print TEXT (or still
      run after SECONDS). It runs while the page's next N marked blocks run
      (default 0); then it gets SIGTERM and must exit 0.
  .. docs-test: console [fresh-node]
      Lines starting with "# " or "$ " are commands (a trailing backslash
      joins lines), run one after the other in one shell (an export stays);
      the lines after one are its expected output (stdout and stderr
      together), compared exactly, where a line "..." stands for any number
      of lines and "cas=N" for any CAS value. A command shown with no output must exit 0. fresh-node:
      first restart the node of tools/kite-up, empty (--no-tour).

The README's "Quick start" and "A quick tour" must have every block
marked: their commands are what a new user types first.

Run: python3 test_docs.py --source DIR --build DIR
"""

import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import check, check_eq  # noqa: E402

PAGES_FIRST = ['README.rst']
PAGES_GLOBS = ['docs', 'drivers-config']
README_REQUIRED = ['Quick start', 'A quick tour']
READY_TIMEOUT = 60
RUN_TIMEOUT = 600
CLEAN_ENV = ('KITE_SERVER', 'KITE_BUILD', 'KITE_ARGS', 'KITE_PROFILE_DIR', 'KITE_DOCS_TMP')


# ---- pages --------------------------------------------------------------------

class Block:
    def __init__(self, page, line, kind, opts, lines, section):
        self.page = page
        self.line = line          # 1-based line of the block's first content line
        self.kind = kind          # run, serve, console or None (not marked)
        self.opts = opts
        self.lines = lines
        self.section = section

    @property
    def where(self):
        return '%s:%d' % (self.page, self.line)


MARK = re.compile(r'^\.\. docs-test:\s*(\w+)\s*(.*)$')


def parse_page(path, rel):
    """Every literal block of an RST page, with its marker if it has one."""
    text = open(path, encoding='utf-8').read().split('\n')
    blocks = []
    section = ''
    pending = None            # (kind, opts, line) of a marker waiting for its block
    i = 0
    while i < len(text):
        ln = text[i]
        if i + 1 < len(text) and ln.strip() and re.match(r'^(=+|-+|~+)$', text[i + 1]) \
                and len(text[i + 1]) >= len(ln.rstrip()):
            section = ln.strip()
        m = MARK.match(ln)
        if m:
            opts = {}
            for word in shlex.split(m.group(2)):
                k, _, v = word.partition('=')
                opts[k] = v
            pending = (m.group(1), opts, i + 1)
            i += 1
            continue
        opener = ln.strip().startswith('.. code-block::') or (
            ln.rstrip().endswith('::') and not ln.lstrip().startswith('..'))
        if opener:
            base = len(ln) - len(ln.lstrip())
            j = i + 1
            while j < len(text) and (not text[j].strip() or
                                     re.match(r'^\s+:\w[\w-]*:', text[j])):
                j += 1
            content = []
            start = j
            indent = None
            while j < len(text):
                t = text[j]
                if t.strip():
                    ind = len(t) - len(t.lstrip())
                    if ind <= base:
                        break
                    indent = ind if indent is None else min(indent, ind)
                content.append(t)
                j += 1
            while content and not content[-1].strip():
                content.pop()
            if content and indent is not None:
                lines = [c[indent:] if c.strip() else '' for c in content]
                kind, opts = (pending[0], pending[1]) if pending else (None, {})
                blocks.append(Block(rel, start + 1, kind, opts, lines, section))
                pending = None
                i = j
                continue
        if pending and ln.strip() and i + 1 - pending[2] > 12:
            raise kt.SetupError('%s:%d: docs-test marker with no block after it'
                                % (rel, pending[2]))
        i += 1
    if pending:
        raise kt.SetupError('%s:%d: docs-test marker with no block after it' % (rel, pending[2]))
    return blocks


def console_steps(block):
    """(command, expected output lines) pairs of a console block."""
    steps = []
    lines = block.lines
    i = 0
    while i < len(lines):
        ln = lines[i]
        if not (ln.startswith('# ') or ln.startswith('$ ')):
            raise kt.SetupError('%s: console block line %r is not a command' % (block.where, ln))
        cmd = ln[2:]
        while cmd.endswith('\\') and i + 1 < len(lines):
            i += 1
            cmd = cmd[:-1] + '\n' + lines[i]
        i += 1
        out = []
        while i < len(lines) and not (lines[i].startswith('# ') or lines[i].startswith('$ ')):
            out.append(lines[i])
            i += 1
        steps.append((cmd, out))
    return steps


def line_match(want, got):
    """One line; "N" after "cas=" in the page stands for any number (CAS values
    are seeded from the clock, docs/protocol.rst)."""
    want, got = want.rstrip(), got.rstrip()
    if 'cas=N' not in want:
        return want == got
    return re.fullmatch(re.escape(want).replace('cas=N', r'cas=\d+'), got) is not None


def lines_match(want, got):
    """Expected lines against actual ones; a "..." line matches any run of lines."""
    def rec(w, g):
        if w == len(want):
            return g == len(got)
        if want[w].strip() == '...':
            return any(rec(w + 1, k) for k in range(g, len(got) + 1))
        return g < len(got) and line_match(want[w], got[g]) and rec(w + 1, g + 1)
    return rec(0, 0)


# ---- running ------------------------------------------------------------------

class Runner:
    def __init__(self, t, root, env):
        self.t = t
        self.root = root
        self.env = env
        self.server = None        # (Popen, log path, block) of a serve block

    def sh(self, script, timeout=RUN_TIMEOUT, check_rc=True, what=''):
        # Output to a file, not a pipe: a server the script leaves in the
        # background (memcached &) would hold a pipe open.
        with tempfile.TemporaryFile(dir=os.environ['KITE_DOCS_TMP']) as out:
            p = subprocess.Popen(['bash', '-e', '-o', 'pipefail', '-c', script], cwd=self.root,
                                 env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            finally:
                try:
                    os.killpg(p.pid, signal.SIGKILL)   # what the script left in the background
                except ProcessLookupError:
                    pass
            out.seek(0)
            text = out.read().decode(errors='replace')
        if p.returncode == -signal.SIGKILL:
            raise kt.CaseFailure('%s: still running after %d s; output:\n%s'
                                 % (what or script, timeout, text[-3000:]))
        self.t.debug('$ %s -> %d\n%s' % (script, p.returncode, text[-2000:]))
        if check_rc:
            check(p.returncode == 0, '%s: exit %d; output:\n%s'
                  % (what or script, p.returncode, text[-3000:]))
        return p.returncode, text

    def run_block(self, b):
        skip = b.opts.get('skip')
        script = []
        for ln in b.lines:
            if skip and ln.strip().startswith(skip):
                self.t.log('  (%s: not run here: %s)' % (b.where, ln.strip()))
                continue
            script.append(ln)
        self.sh('\n'.join(script), what='%s (run block)' % b.where)

    def console_block(self, b):
        if 'fresh-node' in b.opts:
            self.sh('tools/kite-up --no-tour', what='tools/kite-up --no-tour')
        with Shell(self) as shell:
            for cmd, want in console_steps(b):
                self.console_step(b, shell, cmd, want)

    def console_step(self, b, shell, cmd, want):
        rc, got = shell.run(cmd)
        got_lines = got.rstrip('\n').split('\n') if got.strip() else []
        if want:
            check(lines_match(want, got_lines), '%s: `%s` printed\n%s\nwhere the page shows\n%s'
                  % (b.where, cmd, '\n'.join(got_lines[-40:]), '\n'.join(want)))
        else:
            check(rc == 0, '%s: `%s` exited %d:\n%s' % (b.where, cmd, rc, got[-2000:]))

    def serve_block(self, b):
        self.stop_server()
        until = b.opts.get('until')
        after = float(b.opts.get('after', '0'))
        check(until or after > 0, '%s: serve block without until="TEXT" or after=SECONDS'
              % b.where)
        log = os.path.join(os.environ['KITE_DOCS_TMP'], 'serve-%d.log' % b.line)
        f = open(log, 'wb')
        p = subprocess.Popen(['bash', '-e', '-c', '\n'.join(b.lines)], cwd=self.root,
                             env=self.env, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        f.close()
        self.server = (p, log, b)
        start = time.time()
        deadline = start + READY_TIMEOUT
        while time.time() < deadline:
            text = open(log, errors='replace').read()
            if (until and until in text) or (not until and time.time() - start >= after):
                return
            if p.poll() is not None:
                self.server = None
                raise kt.CaseFailure('%s: exited %d before printing %r:\n%s'
                                     % (b.where, p.returncode, until, text[-3000:]))
            time.sleep(0.1)
        self.stop_server()
        raise kt.CaseFailure('%s: no %r within %d s' % (b.where, until, READY_TIMEOUT))

    def stop_server(self):
        """SIGTERM to the server (the children of the block's shell); it must exit 0."""
        if self.server is None:
            return
        p, log, b = self.server
        self.server = None
        if p.poll() is None:
            # bash may have exec'd a lone command: then it is the server.
            for pid in children(p.pid) or [p.pid]:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise kt.CaseFailure('%s: did not stop within 20 s of SIGTERM' % b.where)
        text = open(log, errors='replace').read()
        check(p.returncode == 0, '%s: exit %d after SIGTERM (expected 0):\n%s'
              % (b.where, p.returncode, text[-2000:]))


class Shell:
    """One bash for a console block: commands run in turn, state (export,
    cd) carries over, as when a person types them."""

    def __init__(self, runner):
        self.r = runner

    def __enter__(self):
        tmp = os.environ['KITE_DOCS_TMP']
        self.out_path = os.path.join(tmp, 'console.out')
        self.out = open(self.out_path, 'wb')
        self.p = subprocess.Popen(['bash', '--norc', '--noprofile'], cwd=self.r.root,
                                  env=self.r.env, stdin=subprocess.PIPE, stdout=self.out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.n = 0
        return self

    def run(self, cmd, timeout=120):
        self.n += 1
        mark = '__docs_test_rc_%d__' % self.n
        start = os.path.getsize(self.out_path)
        # stdin of the command is not the shell's script; the mark follows it.
        self.p.stdin.write(('{\n%s\n} </dev/null\necho "%s$?"\n' % (cmd, mark)).encode())
        self.p.stdin.flush()
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.out_path, 'rb') as f:
                f.seek(start)
                text = f.read().decode(errors='replace')
            m = re.search(re.escape(mark) + r'(\d+)\n', text)
            if m:
                self.r.t.debug('$ %s -> %s\n%s' % (cmd, m.group(1), text[:m.start()][-2000:]))
                return int(m.group(1)), text[:m.start()]
            if self.p.poll() is not None:
                raise kt.CaseFailure('`%s` ended the shell (exit %d):\n%s'
                                     % (cmd, self.p.returncode, text[-2000:]))
            time.sleep(0.05)
        raise kt.CaseFailure('`%s`: no end after %d s:\n%s' % (cmd, timeout, text[-2000:]))

    def __exit__(self, *exc):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        self.out.close()


def children(pid):
    out = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open('/proc/%s/stat' % d) as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


# ---- the namespaces -----------------------------------------------------------

def sandbox(tmp):
    """Inside the new mount namespace: fresh /run, /var/log, hugetlbfs, and
    overlays on /usr/local and /etc."""
    def sh(*a):
        subprocess.run(a, check=True)
    sh('mount', '--make-rprivate', '/')
    sh('mount', '-t', 'tmpfs', 'kite-docs-run', '/run')
    sh('mount', '-t', 'tmpfs', 'kite-docs-log', '/var/log')
    for d in ('/usr/local', '/etc'):
        name = d.strip('/').replace('/', '-')
        up, work = os.path.join(tmp, name + '-up'), os.path.join(tmp, name + '-work')
        os.makedirs(up)
        os.makedirs(work)
        sh('mount', '-t', 'overlay', 'kite-docs-' + name, '-o',
           'lowerdir=%s,upperdir=%s,workdir=%s' % (d, up, work), d)
    if os.path.isdir('/sys/kernel/mm/hugepages'):
        os.makedirs('/dev/hugepages', exist_ok=True)
        subprocess.run(['mount', '-t', 'hugetlbfs', 'nodev', '/dev/hugepages'])
    sh('ip', 'link', 'set', 'lo', 'up')


def root_farm(tmp, source, build):
    """A checkout whose build/ is the build under test: symlinks to the source."""
    root = os.path.join(tmp, 'kite')
    os.makedirs(root)
    for name in os.listdir(source):
        if name in ('build', '.git'):
            continue
        os.symlink(os.path.join(source, name), os.path.join(root, name))
    os.symlink(build, os.path.join(root, 'build'))
    return root


def pages(source):
    out = list(PAGES_FIRST)
    for d in PAGES_GLOBS:
        for name in sorted(os.listdir(os.path.join(source, d))):
            if name.endswith('.rst'):
                out.append(os.path.join(d, name))
    return out


# ---- the cases ----------------------------------------------------------------

def body(t):
    args = t.args
    source, build = os.path.abspath(args.source), os.path.abspath(args.build)
    tmp = os.environ['KITE_DOCS_TMP']
    sandbox(tmp)
    root = root_farm(tmp, source, build)
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env['KITE_DOCS_TMP'] = tmp
    env['PATH'] = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    env['HOME'] = tmp
    r = Runner(t, root, env)
    os.environ['KITE_DOCS_TMP'] = tmp
    t.on_cleanup(lambda: r.sh('tools/kite-up --down', check_rc=False, timeout=60))

    all_blocks = {p: parse_page(os.path.join(source, p), p) for p in pages(source)}

    def c_required():
        missing = [b.where for b in all_blocks['README.rst']
                   if b.section in README_REQUIRED and b.kind is None]
        check(not missing, 'README blocks a new user types first are not marked '
              '(.. docs-test:): %s' % ', '.join(missing))
        for s in README_REQUIRED:
            check(any(b.section == s for b in all_blocks['README.rst']),
                  'README has no block in section %r' % s)
    t.case('README: quick start and tour are marked', c_required)

    def run_page(page):
        left = None               # marked blocks the running server stays up for
        for b in all_blocks[page]:
            if b.kind is None:
                continue
            name = '%s %s (%s)' % (b.where, b.kind, b.section)
            fn = {'run': r.run_block, 'serve': r.serve_block,
                  'console': r.console_block}.get(b.kind)
            if fn is None:
                t.case(name, check, False, 'unknown docs-test kind %r' % b.kind)
                continue
            t.case(name, fn, b)
            if b.kind == 'serve':
                left = int(b.opts.get('during', '0'))
                server_at = b.where
            elif left is not None:
                left -= 1
            if left == 0:
                t.case('%s server stops cleanly on SIGTERM' % server_at, r.stop_server)
                left = None
        if r.server is not None:
            t.case('%s server stops cleanly on SIGTERM' % server_at, r.stop_server)

    run_page('README.rst')
    kite_up_cases(t, r)
    install_cases(t, r)
    help_example_case(t, r)
    r.sh('tools/kite-up --down', check_rc=False, timeout=60)
    for page in pages(source)[1:]:
        if any(b.kind for b in all_blocks[page]):
            run_page(page)
    r.sh('tools/kite-up --down', check_rc=False, timeout=60)
    unit_cases(t, r, tmp)


def kite_up_cases(t, r):
    cli = 'build/app/kite-cli/kite-cli -s 198.18.0.2'

    def c_help():
        _, out = r.sh('tools/kite-up --help', what='kite-up --help')
        check(out.startswith('Usage: tools/kite-up'), '--help does not start with a usage '
              'line:\n%s' % out[:500])
        check(not re.search(r'^\s*(set -|\. |\$\()', out, re.M),
              '--help prints shell code:\n%s' % out)
    t.case('kite-up --help is a usage text', c_help)

    state = {}

    def c_workers():
        rc, out = r.sh('KITE_ARGS="--workers 2" tools/kite-up', what='KITE_ARGS="--workers 2" '
                       'tools/kite-up')
        _, st = r.sh(cli + ' stats')
        check(re.search(r'^STAT threads 2$', st, re.M), 'the node does not run 2 workers:\n%s'
              % st[:1500])
        log = open('/var/log/kite/kited.log', errors='replace').read()
        check_eq(log.count('tools/kite-up: kited with'), 2, 'start banners in the log '
                 '(appended, one per start)')
        state['tour'] = out
        _, pid = r.sh('cat /run/kite/kited.pid')
        state['pid'] = pid.strip()
    t.case('kite-up: KITE_ARGS="--workers 2" restarts with 2 workers, log appended', c_workers)

    def c_invalid():
        rc, out = r.sh('KITE_ARGS="--workers nope" tools/kite-up', check_rc=False)
        check(rc != 0, 'kite-up accepted --workers nope')
        check('nothing was changed' in out and "'nope' is not a number" in out,
              'kite-up did not say what is wrong:\n%s' % out[-1500:])
        _, pid = r.sh('cat /run/kite/kited.pid')
        check_eq(pid.strip(), state.get('pid'), 'pid of the running node after a refused '
                 'restart')
        r.sh('tools/kite-up --status', what='kite-up --status after a refused restart')
    t.case('kite-up: invalid KITE_ARGS leave the running node alone', c_invalid)

    def c_paste():
        cmds = [ln[2:] for ln in state.get('tour', '').split('\n') if ln.startswith('$ ')]
        check(len(cmds) >= 6, 'the tour printed %d commands' % len(cmds))
        for cmd in cmds:
            rc, out = r.sh(cmd, check_rc=False)
            check(rc in (0, 1), 'pasted tour command `%s` exited %d:\n%s' % (cmd, rc, out))
            if ' get greeting' in cmd:
                check_eq(out.strip(), 'hello from kite', 'pasted `get greeting`')
    t.case('kite-up: the tour prints commands that paste', c_paste)

    def c_nodes():
        _, out = r.sh('tools/kite-up --nodes 2', what='tools/kite-up --nodes 2')
        check('epoch ' in out and 'member node1 198.18.0.11:11211' in out and
              'member node2 198.18.0.12:11211' in out,
              'the cluster tour does not show both members:\n%s' % out[-2000:])
        check('hello from the cluster' in out, 'the cluster tour did not read its value back')
        _, out = r.sh('tools/kite-up --status')
        check('node 1 runs' in out and 'node 2 runs' in out and 'etcd runs' in out,
              '--status with a cluster: %r' % out)
        r.sh('tools/kite-up --down', what='kite-up --down of the cluster')
        _, out = r.sh('ip netns list; ip -br link; pgrep -a etcd || true')
        r.sh('test ! -e /var/lib/kite/etcd', what='etcd\'s data directory removed by --down')
        for left in ('kite1', 'kite2', 'kite-data', 'kite-mgmt', 'etcd --name'):
            check(left not in out, 'kite-up --down left %r behind:\n%s' % (left.strip(), out))
        rc, _ = r.sh('tools/kite-up --status', check_rc=False)
        check_eq(rc, 1, '--status after --down')
        rc, out = r.sh('tools/kite-up --nodes 1', check_rc=False)
        check(rc != 0 and '--nodes takes 2..9' in out, '--nodes 1: rc %d %r' % (rc, out))
    t.case('kite-up --nodes 2: etcd, bridges, two nodes, a tour; --down removes all', c_nodes)


def install_cases(t, r):
    def c_layout():
        for f in ('bin/kited', 'bin/kite-cli', 'bin/kite-bench',
                  'share/kite/drivers-config/af_packet.conf', 'share/kite/drivers-config/null.conf',
                  'share/kite/kited.conf', 'share/kite/kited.env',
                  'lib/systemd/system/kited.service', 'lib/sysusers.d/kite.conf',
                  'share/doc/kite/README.rst',
                  'share/doc/kite/docs/operations.rst', 'share/doc/kite/docs/cluster.rst',
                  'include/kite/kite.h', 'include/kite/cache.h', 'include/kite/bloom.h'):
            check(os.path.exists('/usr/local/' + f), 'ninja install did not put /usr/local/%s'
                  % f)
        # libkite: the shared library and kite.pc under lib/<arch>, found by pkg-config.
        _, out = r.sh('pkg-config --modversion kite && pkg-config --libs kite')
        check(re.match(r'^\d+\.\d+\.\d+\n-L/usr/local/lib/\S+ -lkite', out),
              'pkg-config does not find the installed kite.pc: %r' % out)
        _, out = r.sh('kited -- --help')
        check('/usr/local/share/kite/drivers-config' in out,
              'the installed kited does not read the installed profiles:\n%s' % out[:1200])
        _, out = r.sh('kited --version')
        check(re.match(r'^kited \d+\.\d+\.\d+ \(DPDK ', out), 'kited --version: %r' % out)
        # KITE_PROFILE_DIR comes first; profiles it lacks come from the install.
        d = os.path.join(os.environ['KITE_DOCS_TMP'], 'profiles')
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'null.conf'), 'w') as f:
            f.write('port = net_null0\nudp-port = 12345\n')
        _, out = r.sh('KITE_PROFILE_DIR=%s kited -- --profile null --print-config' % d)
        check(re.search(r'^udp-port = 12345$', out, re.M), 'KITE_PROFILE_DIR is not used:\n%s'
              % out)
        _, out = r.sh('KITE_PROFILE_DIR=%s kited -- --profile memif --print-config' % d)
        check(re.search(r'^port = net_memif0$', out, re.M),
              'a profile missing from KITE_PROFILE_DIR is not taken from the install:\n%s' % out)
    t.case('install layout: ninja install puts what README lists', c_layout)


def help_example_case(t, r):
    def c_example():
        _, out = r.sh('kited -- --help')
        m = re.search(r'^Example.*\n(?:.*\n)*?\s+(kited -.*)$', out, re.M)
        check(m, 'kited -- --help has no example line:\n%s' % out[-800:])
        cmd = m.group(1)
        # veth1 in namespace kite-demo, as README.rst sets it up.
        b = Block('kited -- --help', 0, 'serve', {'until': 'kited: ready'},
                  ['ip netns exec kite-demo ' + cmd], 'help')
        r.serve_block(b)
        try:
            r.sh('kite-cli -s 198.18.0.6 version', what='kite-cli to the --help example node')
        finally:
            r.stop_server()
    t.case("the example of kited -- --help runs", c_example)


def unit_cases(t, r, tmp):
    unit = '/usr/local/lib/systemd/system/kited.service'

    def exec_start():
        text = open(unit).read()
        env = {}
        for m in re.finditer(r'^Environment="?(\w+)=(.*?)"?$', text, re.M):
            env[m.group(1)] = m.group(2)
        m = re.search(r'^EnvironmentFile=-?(\S+)$', text, re.M)
        check(m, 'no EnvironmentFile in the unit')
        for ln in open(m.group(1)):
            mm = re.match(r'^(\w+)="?(.*?)"?\s*$', ln)
            if mm and not ln.startswith('#'):
                env[mm.group(1)] = mm.group(2)
        m = re.search(r'^ExecStart=(.*)$', text, re.M)
        check(m, 'no ExecStart in the unit')
        # systemd's $VAR: split at whitespace.
        argv = []
        for w in m.group(1).split():
            if w.startswith('$') and w[1:] in env:
                argv += env[w[1:]].split()
            else:
                argv.append(w)
        check(re.search(r'^RuntimeDirectory=kite$', text, re.M), 'no RuntimeDirectory=kite')
        for want in ('WantedBy=multi-user.target', 'After=network-online.target',
                     'dev-hugepages.mount', 'Restart=on-failure'):
            check(want in text, 'the unit lacks %s' % want)
        return argv

    def c_verify():
        check(shutil.which('systemd-analyze'), 'systemd-analyze not found (Debian package '
              'systemd; tools/kite-test installs it)')
        r.sh('systemd-analyze verify ' + unit, what='systemd-analyze verify')
    t.case('kited.service: systemd-analyze verify', c_verify)

    def c_boot():
        argv = exec_start()
        # eth1 of the example: a veth end in a namespace of its own; the
        # example's node address 198.18.0.2/30 is reached from the other end.
        r.sh('ip netns add unit && ip link add kunit0 type veth peer name eth1 && '
             'ip link set eth1 netns unit && ip addr add 198.18.0.1/30 dev kunit0 && '
             'ip link set kunit0 up && ethtool -K kunit0 tx off >/dev/null && '
             'ip netns exec unit ip link set eth1 up && ip netns exec unit ip link set lo up')
        cmd = 'ip netns exec unit ' + ' '.join(shlex.quote(a) for a in argv)
        # At boot /run/kite does not exist: kited must stop at once and say so.
        r.sh('rm -rf /run/kite')
        rc, out = r.sh(cmd, check_rc=False, timeout=30)
        check(rc == 2 and 'RuntimeDirectory=kite' in out and 'EAL' not in out,
              'without /run/kite: exit %d (want 2, before EAL):\n%s' % (rc, out[-1500:]))
        # The example gives up root for the user kite: created as operations.rst
        # says (this /etc is the run's overlay).
        r.sh('systemd-sysusers /usr/local/lib/sysusers.d/kite.conf && getent passwd kite',
             what='systemd-sysusers creates the user kite')
        kite = pwd.getpwnam('kite')
        # systemd's RuntimeDirectory=kite:
        os.makedirs('/run/kite', mode=0o755)
        b = Block(unit, 0, 'serve', {'until': 'kited: ready'}, [cmd], 'unit')
        r.serve_block(b)
        try:
            r.sh('kite-cli -s 198.18.0.2 set unit ok && kite-cli -s 198.18.0.2 get unit',
                 what='kite-cli to the node the unit started')
            check(os.path.exists('/run/kite/kited.pid'), 'no pid file /run/kite/kited.pid')
            pid = int(open('/run/kite/kited.pid').read())
            st = dict(line.split(':', 1) for line in open('/proc/%d/status' % pid)
                      if ':' in line)
            check(st['Uid'].split() == [str(kite.pw_uid)] * 4 and
                  int(st['CapEff'], 16) == 0 and st['Seccomp'].strip() == '2',
                  'the unit\'s kited runs as uid %s, CapEff %s, Seccomp %s (want kite, none, '
                  '2)' % (st['Uid'].split(), st['CapEff'].strip(), st['Seccomp'].strip()))
        finally:
            r.stop_server()
        # As kite, kited cannot remove its pid file from root's folder: systemd
        # removes RuntimeDirectory when the service stops.
        shutil.rmtree('/run/kite', ignore_errors=True)
        r.sh('ip netns del unit; ip link del kunit0 2>/dev/null || true')
    t.case("kited.service: its ExecStart with the example files serves, as at boot", c_boot)


# ---- entry: outside, init, inside ---------------------------------------------

def extra(ap):
    ap.add_argument('--source', required=True, help='the source tree')
    ap.add_argument('--build', required=True, help='the build folder under test')
    ap.add_argument('--stage', default='outside', choices=('outside', 'init', 'inside'))


def stage_of(argv):
    for i, a in enumerate(argv):
        if a == '--stage' and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith('--stage='):
            return a.split('=', 1)[1]
    return 'outside'


def outside():
    """Start the namespaces; the pid namespace's init reaps orphans."""
    if os.geteuid() != 0:
        print('SKIP: docs: needs root (namespaces, mounts)', flush=True)
        sys.exit(kt.SKIP_CODE)
    for tool in ('unshare', 'ip', 'ethtool'):
        if shutil.which(tool) is None:
            print('SKIP: docs: %s not found' % tool, flush=True)
            sys.exit(kt.SKIP_CODE)
    tmp = tempfile.mkdtemp(prefix='kite-docs-')
    env = dict(os.environ, KITE_DOCS_TMP=tmp)
    argv = ['unshare', '--net', '--mount', '--pid', '--fork', '--kill-child',
            '--mount-proc', '--', sys.executable, os.path.abspath(__file__)]
    argv += [a for a in sys.argv[1:] if not a.startswith('--stage')] + ['--stage', 'init']
    p = subprocess.Popen(argv, env=env)
    try:
        rc = p.wait()
    except KeyboardInterrupt:
        p.terminate()
        rc = p.wait()
    finally:
        # The overlays' upper folders (what the pages installed) and logs.
        subprocess.run(['rm', '-rf', '--one-file-system', tmp])
    sys.exit(rc)


def init():
    """PID 1 of the namespace: run the test, reap whatever is orphaned."""
    argv = [sys.executable, os.path.abspath(__file__)]
    argv += [a for a in sys.argv[1:] if not a.startswith('--stage') and a != 'init']
    argv += ['--stage', 'inside']
    child = subprocess.Popen(argv).pid
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGTERM))
    while True:
        pid, status = os.wait()
        if pid == child:
            sys.exit(os.waitstatus_to_exitcode(status) if status else 0)


if __name__ == '__main__':
    stage = stage_of(sys.argv)
    if stage == 'outside':
        outside()
    elif stage == 'init':
        init()
    else:
        kt.run('docs', body, extra)
