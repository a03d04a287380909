"""A child process of a lab test (tcpdump, a live rstmon, a lab server): its output collected
as it runs (tests/dpdk/child.py), waited on until it says what the test needs, stopped by a
signal to its session, its output then kept in files beside the run's other results. Shared by
the scenario runner and the scenario tests that run processes beside the lab."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dpdk"))
import lab as L  # noqa: E402
from child import Child  # noqa: E402


class Proc(Child):
    def __init__(self, args, out_path, err_path=None, name=None, **popen):
        super().__init__(args, **popen)
        self.name = name or os.path.basename(self.args[0])
        self.out_path = out_path
        self.err_path = err_path or out_path + ".stderr"

    def wait_for(self, what, pred, timeout):
        """Polls pred() until true; fails when the process exits first or at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            if pred():
                return
            if self.proc.poll() is not None:
                self.join_output()  # what it wrote before exiting may be what was awaited
                if pred():
                    return
                raise L.LabError("%s exited (%s) before %s\n--- stderr ---\n%s" % (
                    self.name, self.proc.returncode, what, self.stderr[-3000:]))
            if time.monotonic() > deadline:
                raise L.LabError("%s: no %s within %d s\n--- stderr ---\n%s" % (
                    self.name, what, timeout, self.stderr[-3000:]))
            time.sleep(0.02)

    def stop(self, sig=signal.SIGINT, timeout=30):
        """Signals its session and waits; SIGKILLs it at the deadline. Returns the exit status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.close()
        with open(self.out_path, "w") as f:
            f.write(self.stdout)
        with open(self.err_path, "w") as f:
            f.write(self.stderr)
        return self.proc.returncode
