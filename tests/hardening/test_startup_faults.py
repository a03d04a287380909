#!/usr/bin/env python3
"""Start-up faults: each ends with exactly one line on stderr, rstmon's, naming the fault (DPDK's
own messages are held back and its last word joins that line), a non-zero exit, and nothing left
half-started: no process of the run survives it, the metrics port is free again, no hugepage file
stays behind.

- no hugepages: EAL options asking for them (--in-memory) with none free -> exit 1; rstmon's own
  EAL options fall back to --no-huge instead (every other test runs that way here);
- port not found: a vdev driver that does not exist, a PCI address that is absent -> exit 1;
- a NIC that refuses the config: a bonding device without members (configure refused), an
  af_packet port whose frames do not fit the configured mbufs (RX queue refused; root, in a
  network namespace of the test's own) -> exit 1;
- the metrics port in use -> exit 1;
- a bad config (YAML syntax, out-of-range value, unknown key), a missing capture -> exit 2.

Usage: test_startup_faults.py RSTMON_EXE SOURCE_ROOT [unittest args]
"""

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

import harness as h

pu = h.pu
RSTMON = ROOT = None
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (info|warning) ")


def hugepage_dirs():
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[2] == "hugetlbfs"]


def hugepages_free():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


def session_members(sid):
    """Processes still in the session the run was started in (start_new_session: sid = pid)."""
    left = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            left.append(stat.split("/")[2])
    return left


class StartupFaults(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rstmon-startup-")
        cls.lab = os.path.join(ROOT, "tests", "data", "rst-lab.pcap")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def config(self, text):
        return h.write(os.path.join(self.tmp, "cfg.yaml"), text)

    def free_port(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def fault(self, args, status, pattern, metrics_port=None, prefix=None):
        """Runs rstmon to its exit; asserts the status, one error line matching `pattern`, and that
        nothing of the run is left."""
        before = {d: set(os.listdir(d)) for d in hugepage_dirs()}
        proc = subprocess.Popen([RSTMON, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True, text=True,
                                cwd=self.tmp)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                pu.kill_group(proc)
        desc = f"args: {args}\nexit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
        self.assertEqual(proc.returncode, status, desc)
        errors = [ln for ln in err.splitlines() if ln and not LOG_LINE.match(ln)]
        self.assertEqual(len(errors), 1, f"exactly one error line\n{desc}")
        self.assertRegex(errors[0], "^rstmon: " + pattern, desc)
        self.assertEqual(out, "", "nothing on stdout after a start-up fault")
        # Nothing half-started: no process of the run, the metrics port free, no hugepage file.
        self.assertEqual(session_members(proc.pid), [], "processes left behind")
        if metrics_port is not None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", metrics_port))
        for d, names in before.items():
            new = set(os.listdir(d)) - names
            if prefix is not None:
                new = {n for n in new if n.startswith(prefix)}
            self.assertEqual(new, set(), f"hugepage files left in {d}")
        return errors[0]

    def live_port(self, device, extra=""):
        port = self.free_port()
        cfg = self.config(f'ports: [{{name: p0, device: "{device}"}}]\n'
                          f'metrics: {{listen: "127.0.0.1:{port}"}}\n' + extra)
        return cfg, port

    # -- hugepages ---------------------------------------------------------------------------

    def test_hugepages_asked_for_none_free(self):
        if hugepages_free() > 0:
            self.skipTest("this machine has free hugepages: --in-memory would succeed")
        line = self.fault(["--pcap", self.lab, "--", "--in-memory", "-l", "0", "--file-prefix",
                           "rstmon-hp-test"], 1,
                          r"EAL initialisation failed: .*\(DPDK: EAL: Cannot get hugepage "
                          r"information\.\) \(EAL arguments: rstmon --in-memory",
                          prefix="rstmon-hp-test")
        self.assertNotIn("FATAL", line)

    def test_no_hugepages_rstmon_falls_back(self):
        res = pu.run([RSTMON, "--pcap", self.lab, "--report", "json", "--log-level", "debug"],
                     timeout=60)
        self.assertEqual(res.returncode, 0, res.describe())
        if hugepages_free() == 0:
            self.assertIn("--no-huge", res.stderr)  # the EAL arguments, logged at debug level
        self.assertEqual(h.report_of(res.stdout)["packets"], 174)

    # -- ports -------------------------------------------------------------------------------

    def test_vdev_driver_not_found(self):
        cfg, port = self.live_port("net_nosuchdriver0")
        self.fault(["--config", cfg], 1, r"cannot probe device 'net_nosuchdriver0': .*\(DPDK: ",
                   metrics_port=port)

    def test_pci_address_absent(self):
        cfg, port = self.live_port("0000:ff:1f.7")
        self.fault(["--config", cfg], 1, r"cannot probe device '0000:ff:1f\.7': No such device",
                   metrics_port=port)

    def test_nic_refuses_configure(self):
        # A bonding device with no member ports cannot be configured.
        cfg, port = self.live_port("net_bonding_rstmon0,mode=0")
        self.fault(["--config", cfg], 1, r"cannot configure port p0: .*\(DPDK: ",
                   metrics_port=port)

    def test_nic_refuses_rx_queue(self):
        if os.geteuid() != 0:
            self.skipTest("network namespaces need root")
        ns = f"rstmon-sf-{os.getpid()}"
        ip = ["ip", "-n", ns]
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            subprocess.run(ip + ["link", "add", "span0", "type", "veth", "peer", "name", "tap0"],
                           check=True)
            subprocess.run(ip + ["link", "set", "span0", "up"], check=True)
            # af_packet's 2 KiB frames do not fit 128-byte mbufs: its RX queue refuses them.
            cfg, port = self.live_port("net_af_packet_rstmon0,iface=span0",
                                       "rx: {mbuf_size: 256}\n")
            proc_args = ["ip", "netns", "exec", ns, RSTMON, "--config", cfg]
            res = pu.run(proc_args, timeout=60)
            self.assertEqual(res.returncode, 1, res.describe())
            errors = [ln for ln in res.stderr.splitlines() if ln and not LOG_LINE.match(ln)]
            self.assertEqual(len(errors), 1, res.describe())
            self.assertRegex(errors[0], r"^rstmon: cannot set up RX queue of port p0: .*"
                                        r"\(DPDK: .*will not fit in mbuf")
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    # -- metrics -----------------------------------------------------------------------------

    def test_metrics_port_in_use(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            cfg = self.config('ports: [{name: p0, device: "net_null_rstmon0"}]\n'
                              f'metrics: {{listen: "127.0.0.1:{port}"}}\n')
            self.fault(["--config", cfg], 1,
                       rf"cannot serve metrics on 127\.0\.0\.1:{port}: cannot bind to "
                       rf"127\.0\.0\.1:{port}: 98 \(Address already in use\)$")
        # ... and the same config starts once the port is free (the fault was only the port).
        live = h.Live(RSTMON, ["--config", cfg, "--report", "none"], self.tmp)
        try:
            self.assertEqual(h.metric(live.samples(), "rstmon_build_info"), 1)
            live.signal(15)
            self.assertEqual(live.wait(30), 0, live.describe())
        finally:
            live.kill()

    # -- config and input --------------------------------------------------------------------

    def test_bad_yaml(self):
        cfg = self.config("flow_table: [\n")
        self.fault(["--config", cfg, "--pcap", self.lab], 2, r"config: .*not valid YAML")

    def test_out_of_range_value(self):
        cfg = self.config("flow_table: {size: 12}\n")
        self.fault(["--config", cfg, "--pcap", self.lab], 2,
                   r"config: .*flow_table\.size: 12 is out of range")

    def test_unknown_key(self):
        cfg = self.config("flow_tabel: {size: 4096}\n")
        self.fault(["--config", cfg, "--pcap", self.lab], 2, r"config: .*flow_tabel")

    def test_missing_capture(self):
        self.fault(["--pcap", os.path.join(self.tmp, "nope.pcap")], 2,
                   r"cannot open capture '.*nope\.pcap': No such file or directory")

    def test_no_ports_and_no_capture(self):
        cfg = self.config("workers: 1\n")
        self.fault(["--config", cfg], 2, r"no ports configured")


if __name__ == "__main__":
    RSTMON, ROOT, argv = pu.take_script_args(sys.argv)
    unittest.main(argv=argv, verbosity=2)
