#!/usr/bin/python3
"""deploy/hugepages-and-bind.sh: what --dry-run says it would do, and its refusals.

Runs the helper against this machine's real /sys and /proc, only with --dry-run or in ways it
must refuse, and checks after every run that it changed nothing: hugepage counts of every
size and node, the mount table, its state directory and mount point (both fresh temporary
paths that must not come into existence).

Exit status 77 (meson's skip) when bash or the kernel's hugepage interface is missing.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy", "hugepages-and-bind.sh")
ENV_FILE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy", "systemd", "rstmon.env")
SIZE_2M = "/sys/kernel/mm/hugepages/hugepages-2048kB"
SIZE_1G = "/sys/kernel/mm/hugepages/hugepages-1048576kB"
NODE0 = "/sys/devices/system/node/node0"
NOBODY = 65534

if not shutil.which("bash") or not os.path.isdir(SIZE_2M):
    print("bash or the kernel's 2 MiB hugepage interface is missing: skipping", file=sys.stderr)
    sys.exit(77)


def read(path):
    with open(path) as f:
        return f.read().strip()


def machine_state():
    """What the helper could change: hugepage counts (all sizes, all nodes) and hugetlbfs
    mounts. (Other mounts come and go with other tests' network namespaces.)"""
    counts = {p: read(p) for p in sorted(glob.glob("/sys/kernel/mm/hugepages/*/nr_hugepages") +
                                         glob.glob("/sys/devices/system/node/node*/hugepages/*/nr_hugepages"))}
    counts["/proc/sys/vm/nr_hugepages"] = read("/proc/sys/vm/nr_hugepages")
    mounts = [l for l in read("/proc/mounts").splitlines() if l.split()[2] == "hugetlbfs"]
    return counts, mounts


def pci_devices():
    """(address, driver, up kernel interfaces) of this machine's PCI functions."""
    found = []
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        drv = os.path.basename(os.path.realpath(dev + "/driver")) if os.path.exists(dev + "/driver") else ""
        up = []
        for n in glob.glob(dev + "/net/*") + glob.glob(dev + "/virtio*/net/*"):
            try:
                if int(read(n + "/flags"), 16) & 1:
                    up.append(os.path.basename(n))
            except OSError:
                pass
        found.append((os.path.basename(dev), drv, up))
    return found


class HugepagesHelper(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rstmon-hp-test-")
        # Paths the helper is pointed at and must not create.
        self.state = os.path.join(self.tmp, "state")
        self.mnt = os.path.join(self.tmp, "huge")
        self.before = machine_state()

    def tearDown(self):
        self.assertEqual(machine_state(), self.before, "the helper changed the machine")
        self.assertFalse(os.path.exists(self.state), "the helper created its state directory")
        self.assertFalse(os.path.exists(self.mnt), "the helper created the mount point")
        shutil.rmtree(self.tmp)

    def helper(self, *args, env=None, as_nobody=False):
        cmd = ["bash", HELPER, *args]
        kwargs = {}
        if as_nobody:
            kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
        e = {k: v for k, v in os.environ.items() if not k.startswith("RSTMON_")}
        e.update(env or {})
        return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=60, **kwargs)

    def some_pci_device(self):
        devs = pci_devices()
        if not devs:
            self.skipTest("no PCI device on this machine")
        return devs[0]

    def dry(self, *args, **kw):
        r = self.helper("--dry-run", *args, "--state-dir", self.state, **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.splitlines(), r.stderr

    def assertRefused(self, r, message, status=1):
        self.assertEqual(r.returncode, status, r.stdout + r.stderr)
        self.assertIn(message, r.stderr)
        self.assertNotIn("+ ", r.stdout, "a refused run printed commands")

    # ---- hugepages and the mount ----------------------------------------------------------

    def test_reserve_on_a_node_and_mount(self):
        if not os.path.isdir(NODE0 + "/hugepages/hugepages-2048kB"):
            self.skipTest("no per-node hugepage interface")
        nr = NODE0 + "/hugepages/hugepages-2048kB/nr_hugepages"
        have = int(read(nr))
        lines, err = self.dry("setup", "--pages", str(have + 16), "--node", "0", "--mount", self.mnt)
        self.assertEqual(lines, [
            f"+ mkdir -p {self.state}",
            f"+ echo {have} > {self.state}/hugepages-2048kB-node0",
            f"+ echo {have + 16} > {nr}",
            f"+ mkdir -p {self.mnt}",
            f"+ mount -t hugetlbfs -o pagesize=2M nodev {self.mnt}",
            f"+ echo {self.mnt} > {self.state}/mounted-{self.mnt.replace('/', '_')}",
            "# no NIC to bind (--pci or RSTMON_PCI_DEVICES)",
        ])
        self.assertEqual(err, "")

    def test_reserve_anywhere_with_a_group(self):
        have = int(read(SIZE_2M + "/nr_hugepages"))
        lines, _ = self.dry("setup", "--pages", str(have + 8), "--mount", self.mnt, "--group", "root")
        self.assertIn(f"+ echo {have + 8} > {SIZE_2M}/nr_hugepages", lines)
        self.assertIn(f"+ mount -t hugetlbfs -o pagesize=2M,gid=0,mode=1770 nodev {self.mnt}", lines)

    def test_enough_pages_already(self):
        have = int(read(SIZE_2M + "/nr_hugepages"))
        lines, _ = self.dry("setup", "--pages", str(have), "--mount", self.mnt)
        self.assertEqual(lines[0], f"# {have} 2M hugepages already reserved (wanted {have})")
        self.assertFalse([l for l in lines if "nr_hugepages" in l])

    def test_1g_pages(self):
        if not os.path.isdir(SIZE_1G):
            self.skipTest("no 1 GiB hugepages on this CPU")
        have = int(read(SIZE_1G + "/nr_hugepages"))
        lines, _ = self.dry("setup", "--size", "1G", "--pages", str(have + 1), "--mount", self.mnt)
        self.assertIn(f"+ echo {have + 1} > {SIZE_1G}/nr_hugepages", lines)
        self.assertIn(f"+ mount -t hugetlbfs -o pagesize=1G nodev {self.mnt}", lines)

    def test_settings_from_the_env_file(self):
        # rstmon.env as shipped, sourced the way systemd's EnvironmentFile reads it; only the
        # paths this test must own are overridden.
        with open(ENV_FILE) as f:
            env = dict(l.strip().split("=", 1) for l in f if l.strip() and not l.startswith("#"))
        self.assertEqual(env["RSTMON_HUGEPAGES"], "1024")
        env.update(RSTMON_HUGEPAGE_MOUNT=self.mnt, RSTMON_HUGEPAGES="0")
        lines, _ = self.dry("setup", env=env)
        self.assertIn(f"+ mount -t hugetlbfs -o pagesize=2M nodev {self.mnt}", lines)
        self.assertIn("# no NIC to bind (--pci or RSTMON_PCI_DEVICES)", lines)

    def test_dry_run_needs_no_root(self):
        have = int(read(SIZE_2M + "/nr_hugepages"))
        kw = {"as_nobody": True} if os.geteuid() == 0 else {}
        lines, _ = self.dry("setup", "--pages", str(have + 1), "--mount", self.mnt, **kw)
        self.assertIn(f"+ echo {have + 1} > {SIZE_2M}/nr_hugepages", lines)

    # ---- NIC binding ----------------------------------------------------------------------

    def test_bind_a_nic(self):
        free = [(a, d) for a, d, up in pci_devices() if d != "vfio-pci" and not up]
        if not free:
            self.skipTest("no PCI function without an active kernel interface")
        # one with a driver if there is one: that is what restore binds back to
        addr, drv = sorted(free, key=lambda f: f[1] == "")[0]
        short = addr[5:] if addr.startswith("0000:") else addr
        lines, _ = self.dry("setup", "--pages", "0", "--mount", self.mnt, "--pci", short)
        self.assertEqual(lines[-3:], [
            "+ modprobe vfio-pci",
            f"+ echo {drv or repr('')} > {self.state}/driver-{addr}",
            f"+ dpdk-devbind.py --bind=vfio-pci {addr}",
        ])

    def test_a_nic_in_use_needs_force(self):
        busy = [(a, d, up) for a, d, up in pci_devices() if up and d != "vfio-pci"]
        if not busy:
            self.skipTest("no PCI function with an active kernel interface")
        addr, drv, up = busy[0]
        r = self.helper("--dry-run", "setup", "--pages", "0", "--mount", self.mnt,
                        "--state-dir", self.state, "--pci", addr)
        self.assertRefused(r, f"{addr} carries kernel interface {up[0]}, which is up")
        lines, _ = self.dry("setup", "--pages", "0", "--mount", self.mnt, "--pci", addr, "--force")
        self.assertEqual(lines[-1], f"+ dpdk-devbind.py --bind=vfio-pci --force {addr}")

    # ---- restore --------------------------------------------------------------------------

    def test_restore_what_setup_remembered(self):
        addr, drv, _ = self.some_pci_device()
        have = int(read(SIZE_2M + "/nr_hugepages"))
        # The state a setup leaves: the NIC's driver before binding, the page count before
        # reserving, the mount it made. It lives in a directory of this test's, not /run.
        remembered = os.path.join(self.tmp, "remembered")
        os.mkdir(remembered)
        for name, value in (("driver-" + addr, "ixgbe"), ("hugepages-2048kB", str(have)),
                            ("mounted-" + self.mnt.replace("/", "_"), self.mnt)):
            with open(os.path.join(remembered, name), "w") as f:
                f.write(value + "\n")
        r = self.helper("--dry-run", "restore", "--pci", addr, "--mount", self.mnt,
                        "--state-dir", remembered)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            f"+ dpdk-devbind.py --bind=ixgbe {addr}",
            f"+ rm -f {remembered}/driver-{addr}",
            # the state says setup mounted it, but nothing is mounted there now
            f"+ rm -f {remembered}/mounted-{self.mnt.replace('/', '_')}",
            f"+ echo {have} > {SIZE_2M}/nr_hugepages",
            f"+ rm -f {remembered}/hugepages-2048kB",
        ])
        self.assertEqual(sorted(os.listdir(remembered)), sorted(
            ["driver-" + addr, "hugepages-2048kB", "mounted-" + self.mnt.replace("/", "_")]),
            "a dry run removed state")

    def test_restore_without_state(self):
        addr, drv, _ = self.some_pci_device()
        lines, _ = self.dry("restore", "--pci", addr, "--mount", self.mnt)
        self.assertEqual(lines[0], f"# {addr}: no driver remembered in {self.state}/driver-{addr}"
                                   f" and no --to-driver: leaving it on {drv}")
        lines, _ = self.dry("restore", "--pci", addr, "--mount", self.mnt, "--to-driver", "ice")
        self.assertEqual(lines[0], f"+ dpdk-devbind.py --bind=ice {addr}")
        self.assertIn(f"# {self.mnt} was not mounted by setup: leaving it", lines)

    def test_status_reports_and_changes_nothing(self):
        r = self.helper("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        have = read(SIZE_2M + "/nr_hugepages")
        free = read(SIZE_2M + "/free_hugepages")
        self.assertIn(f"2048kB: {have} reserved, {free} free", r.stdout.splitlines())
        self.assertIn("hugetlbfs mounts:", r.stdout)

    # ---- refusals -------------------------------------------------------------------------

    def test_not_root(self):
        kw = {"as_nobody": True} if os.geteuid() == 0 else {}
        r = self.helper("setup", "--pages", "1", "--mount", self.mnt, "--state-dir", self.state, **kw)
        self.assertRefused(r, "setup must run as root")

    def test_device_absent(self):
        r = self.helper("--dry-run", "setup", "--pci", "0000:ff:1f.7", "--mount", self.mnt,
                        "--state-dir", self.state)
        self.assertRefused(r, "PCI device 0000:ff:1f.7 not found")

    def test_not_a_pci_address(self):
        r = self.helper("--dry-run", "setup", "--pci", "eth0", "--state-dir", self.state)
        self.assertRefused(r, "'eth0' is not a PCI address")

    def test_more_pages_than_memory(self):
        mem_kb = int(read("/proc/meminfo").split("MemTotal:")[1].split()[0])
        pages = mem_kb // 2048 + 1
        r = self.helper("--dry-run", "setup", "--pages", str(pages), "--mount", self.mnt,
                        "--state-dir", self.state)
        self.assertRefused(r, f"{pages} 2M hugepages need")
        self.assertIn("ask for fewer pages", r.stderr)

    def test_no_such_node(self):
        r = self.helper("--dry-run", "setup", "--node", "999", "--state-dir", self.state)
        self.assertRefused(r, "NUMA node 999 does not exist")

    def test_bad_size_and_count(self):
        r = self.helper("--dry-run", "setup", "--size", "4M", "--state-dir", self.state)
        self.assertRefused(r, "--size: '4M' is not a hugepage size")
        r = self.helper("--dry-run", "setup", "--pages", "many", "--state-dir", self.state)
        self.assertRefused(r, "--pages: 'many' is not a whole number")

    def test_mount_point_taken_by_another_filesystem(self):
        r = self.helper("--dry-run", "setup", "--pages", "0", "--mount", "/proc",
                        "--state-dir", self.state)
        self.assertRefused(r, "/proc is already a proc mount")

    def test_usage_errors(self):
        r = self.helper("--dry-run", "frobnicate")
        self.assertRefused(r, "unknown argument: frobnicate", status=2)
        self.assertIn("usage:", r.stderr)
        r = self.helper("--dry-run")
        self.assertRefused(r, "no command", status=2)


if __name__ == "__main__":
    unittest.main()
