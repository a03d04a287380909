"""A child process whose stdout and stderr are collected by threads while it runs, so a test can
poll them (a metrics port on stderr, a JSON report on stdout) and never blocks on a full pipe.
In its own session, so it and whatever it starts can be signalled together. The base of the
tests' rstmon, tcpdump and lab-server children (tests/dpdk, tests/scenarios)."""
import subprocess
import threading


class Child:
    def __init__(self, args, **popen):
        self.args = [str(a) for a in args]
        self._out, self._err = [], []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True, **popen)
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self._out),
                                      (self.proc.stderr, self._err))]
        for t in self._threads:
            t.start()

    def _pump(self, stream, buf):
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self._lock:
                buf.append(chunk)

    @property
    def stdout(self):
        with self._lock:
            return b"".join(self._out).decode(errors="replace")

    @property
    def stderr(self):
        with self._lock:
            return b"".join(self._err).decode(errors="replace")

    def describe(self):
        return (f"command: {' '.join(self.args)}\nexit status: {self.proc.poll()}\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")

    def join_output(self, timeout=5):
        """Waits for the collecting threads: once the process has ended, all it wrote is in."""
        for t in self._threads:
            t.join(timeout=timeout)

    def close(self):
        """After the process has ended: the last output collected, the pipes closed."""
        self.join_output()
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()
