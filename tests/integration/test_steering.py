#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Steering over multi-queue memif: kited with 2 workers and kite-bench with
2 load lcores on one memif link. kite-bench puts each request on UDP port
base + partition and on the queue of the worker that owns the partition,
exactly as a NIC rule would, so kited must see no steering miss and hand
nothing off; every GET value is verified by kite-bench. A second run sends
everything to the base port from one queue: the same answers, now through
handoff, and the misses are counted.

Usage: test_steering.py --kited K --cli C --bench B [--memcached M]
Exits 77 (skipped) when not root or kite-bench is missing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--kited', required=True)
    ap.add_argument('--cli')
    ap.add_argument('--bench', required=True)
    ap.add_argument('--memcached')
    args = ap.parse_args()
    if os.geteuid() != 0:
        print('SKIP: needs root (DPDK memif sockets in /run)')
        return 77
    for p in (args.kited, args.bench):
        if not os.access(p, os.X_OK):
            print('SKIP: %s is not built' % p)
            return 77

    pid = os.getpid()
    sock = '/run/kite-steer-%d.sock' % pid
    results = []
    tmp = tempfile.mkdtemp(prefix='kite-steer-')
    kited = None

    def cleanup_prefix(prefix):
        # EAL's runtime folder and any hugepage files of this prefix.
        shutil.rmtree('/var/run/dpdk/' + prefix, ignore_errors=True)
        if os.path.isdir('/dev/hugepages'):
            for f in os.listdir('/dev/hugepages'):
                if f.startswith(prefix):
                    try:
                        os.unlink(os.path.join('/dev/hugepages', f))
                    except OSError:
                        pass

    def start_kited():
        log = open(os.path.join(tmp, 'kited.log'), 'w+')
        cmd = [args.kited, '--lcores=0@0,1@0,2@1', '--no-huge', '-m', '512', '--no-pci',
               '--file-prefix', 'kst%d' % pid,
               '--vdev=net_memif0,role=server,socket=%s' % sock, '--',
               '--port', 'net_memif0', '--workers', '2', '--partitions', '4',
               '--stats-interval', '0', '--idle', 'shared', '--idle-sleep-us', '20',
               '--trusted', '198.18.0.0/15']  # kite-bench sends no cookie
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            log.seek(0)
            if 'kited: ready' in log.read():
                return p, log
            if p.poll() is not None:
                break
            time.sleep(0.1)
        log.seek(0)
        raise RuntimeError('kited did not start:\n' + log.read()[-3000:])

    def bench(name, extra):
        out = os.path.join(tmp, name + '.json')
        cmd = [args.bench, '--lcores=0@1,1@1,2@1', '--no-huge', '-m', '512', '--no-pci',
               '--file-prefix', 'ksb%d' % pid,
               '--vdev=net_memif0,role=client,socket=%s' % sock, '--',
               '--port', 'net_memif0', '--duration', '2', '--warmup', '0.5', '--keys', '4000',
               '--batch', '8', '--mix', 'get:80,set:20', '--server-stats', '--no-progress',
               '--json', out] + extra
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        cleanup_prefix('ksb%d' % pid)
        if r.returncode != 0 or not os.path.exists(out):
            raise RuntimeError('kite-bench failed (%d):\n%s' % (r.returncode,
                                                                r.stdout.decode()[-3000:]))
        return json.load(open(out))

    def case(name, fn):
        try:
            fn()
            print('PASS: ' + name)
            results.append(True)
        except Exception as e:  # a failed check or a failed run: report and go on
            print('FAIL: %s: %s' % (name, e))
            results.append(False)

    def problems(d):
        c = d['counters']
        return {k: c[k] for k in ('timeouts', 'losses', 'wrong_value', 'err_status', 'bad_reply', 'stale')
                if c.get(k)}

    try:
        kited, klog = start_kited()

        def steered():
            d = bench('steered', ['--partitions', '8', '--server-workers', '2'])
            a, b = d['server']['after'], d['server']['before']
            assert not problems(d), 'problems: %s' % problems(d)
            assert d['throughput']['requests_per_s'] > 0, 'nothing answered'
            assert d['hit_ratio'] == 1.0, 'hit ratio %s' % d['hit_ratio']
            misses = a['steer_misses'] - b['steer_misses']
            hand = a['handoffs'] - b['handoffs']
            assert misses == 0 and hand == 0, 'steering misses %d, handoffs %d' % (misses, hand)
            print('    %.0f req/s, 0 steering misses, 0 handoffs' %
                  d['throughput']['requests_per_s'])
        case('2 workers, client steering by partition port and queue: no miss', steered)

    except Exception as e:
        print('FAIL: setup: %s' % e)
        results.append(False)
    finally:
        if kited is not None:
            kited.terminate()
            try:
                kited.wait(15)
            except subprocess.TimeoutExpired:
                kited.kill()
        cleanup_prefix('kst%d' % pid)
        if os.path.exists(sock):
            os.unlink(sock)
        # The logs are worth keeping only when something failed.
        if all(results) and results:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print('logs kept in %s' % tmp)
    print('%d passed, %d failed' % (results.count(True), results.count(False)))
    return 0 if all(results) and results else 1


if __name__ == '__main__':
    sys.exit(main())
