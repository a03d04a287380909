"""A child process of a lab test (tcpdump, a live rstmon): its own session, stdout and stderr
collected by threads, waited on with the lab's poll, stopped by a signal. Shared by the scenario
tests that run processes beside the lab."""
import os
import signal
import subprocess
import threading

import lab as L


class Proc:
    """A child process in its own session; stdout/stderr collected by threads."""

    def __init__(self, args, out_path):
        self.args = [str(a) for a in args]
        self.out_path = out_path
        self.buf = {"out": [], "err": []}
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        self.t = [threading.Thread(target=self._pump, args=(s, self.buf[k]), daemon=True)
                  for s, k in ((self.p.stdout, "out"), (self.p.stderr, "err"))]
        for t in self.t:
            t.start()

    @staticmethod
    def _pump(stream, buf):
        for chunk in iter(lambda: stream.read1(65536), b""):
            buf.append(chunk)

    def text(self, k):
        return b"".join(list(self.buf[k])).decode(errors="replace")

    def wait_for(self, what, pred, timeout):
        def ok():
            if pred():
                return True
            if self.p.poll() is not None:
                raise L.LabError("%s exited (%s) before %s:\n%s" % (
                    self.args[0], self.p.returncode, what, self.text("err")[-3000:]))
            return False
        return L.wait_until(ok, timeout, what, step=0.02)

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.p.poll() is None:
            os.killpg(self.p.pid, sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=10)
        for t in self.t:
            t.join(timeout=5)
        with open(self.out_path, "w") as f:
            f.write(self.text("out"))
        with open(self.out_path + ".stderr", "w") as f:
            f.write(self.text("err"))
        return self.p.returncode
