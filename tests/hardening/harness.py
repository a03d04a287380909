"""Shared by the hardening tests: configs, rstmon runs (to completion or live), scrapes, memory.

Real parts only: the rstmon binary, DPDK's net_pcap/net_null, the kernel's tmpfs and signals.
Conditions are polled, never slept for.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "dpdk"))
import pcaputil as pu  # noqa: E402,F401  (re-exported for the tests)

SKIP = 77  # meson's "skipped"


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def poll(cond, timeout, what, interval=0.02):
    """Calls cond() until it returns something truthy (returned) or `timeout` s pass (fails)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text exposition -> [(name, {label: value}, float)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def metric(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for n, lb, v in samples
               if n == name and all(lb.get(k) == str(x) for k, x in labels.items()))


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class Live:
    """A running rstmon (its own session, so it and anything it starts can be stopped together);
    stdout and stderr go to files, so a long run never blocks on a full pipe."""

    def __init__(self, exe, args, workdir, name="rstmon"):
        self.out_path = os.path.join(workdir, name + ".stdout")
        self.err_path = os.path.join(workdir, name + ".stderr")
        self.args = [str(exe)] + [str(a) for a in args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self._url = None

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def describe(self):
        return (f"command: {' '.join(self.args)}\nexit status: {self.proc.poll()}\n"
                f"--- stdout ---\n{self.stdout()[-3000:]}\n--- stderr ---\n{self.stderr()[-3000:]}")

    def alive(self):
        return self.proc.poll() is None

    def url(self, timeout=60):
        """The /metrics URL rstmon logs at start (metrics.listen port 0 picks a free port)."""
        if self._url is None:
            def logged():
                if not self.alive():
                    raise AssertionError(f"rstmon exited before serving metrics\n{self.describe()}")
                m = re.search(r"metrics at (https?://\S+/metrics)", self.stderr())
                return m.group(1) if m else None
            self._url = poll(logged, timeout, "the metrics address in rstmon's log")
        return self._url

    def scrape(self, timeout=5):
        with urllib.request.urlopen(self.url(), timeout=timeout) as r:
            return r.read().decode()

    def samples(self):
        return parse_metrics(self.scrape())

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Exit status, or an AssertionError (the process is then killed)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"rstmon did not exit within {timeout} s\n{self.describe()}")

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def report_of(text):
    """The JSON report: the last line of stdout that is a JSON object."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON report on stdout:\n{text[-2000:]}")
