#!/usr/bin/python3
"""deploy/systemd: systemd-analyze verify accepts both units without a word, and the settings
the operator guide promises are there.

systemd-analyze verify runs on a scratch root holding this system's unit library, the two
units at /etc/systemd/system and stand-ins for the programs they start (verify wants every
Exec*= program to exist), so it needs neither an installed rstmon nor systemd as PID 1.
verify exits 0 even when it ignores an unknown key or a bad value, so any output fails.

Exit status 77 (meson's skip) when systemd-analyze or the unit library is missing.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "deploy", "systemd")
UNIT_FILES = ("rstmon.service", "rstmon-hugepages.service")
LIBRARY = next((d for d in ("/usr/lib/systemd/system", "/lib/systemd/system")
                if os.path.isfile(os.path.join(d, "sysinit.target"))), None)
ANALYZE = shutil.which("systemd-analyze")

if not ANALYZE or not LIBRARY:
    print("systemd-analyze or the systemd unit library is missing: skipping", file=sys.stderr)
    sys.exit(77)


def exec_programs(text):
    """Absolute program paths of Exec*= lines (after systemd's prefix characters)."""
    return re.findall(r"^Exec\w+=[-@:+!]*(/\S+)", text, re.M)


def settings(text):
    """{key: [values]} of the uncommented assignments of a unit file."""
    found = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            found.setdefault(m.group(1), []).append(m.group(2))
    return found


class Units(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = {}
        for name in UNIT_FILES:
            with open(os.path.join(UNITS, name)) as f:
                cls.text[name] = f.read()

    def verify(self, texts):
        """systemd-analyze verify on a scratch root with these unit texts; its output."""
        with tempfile.TemporaryDirectory(prefix="rstmon-units-") as root:
            shutil.copytree(LIBRARY, root + "/usr/lib/systemd/system", symlinks=True)
            os.symlink("usr/lib", root + "/lib")
            os.makedirs(root + "/etc/systemd/system")
            for name, text in texts.items():
                with open(root + "/etc/systemd/system/" + name, "w") as f:
                    f.write(text)
                for prog in exec_programs(text):
                    path = root + prog
                    if not os.path.exists(path):
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        with open(path, "w") as f:
                            f.write("#!/bin/sh\n")
                        os.chmod(path, 0o755)
            r = subprocess.run([ANALYZE, "verify", "--root=" + root]
                               + ["/etc/systemd/system/" + n for n in texts],
                               capture_output=True, text=True, timeout=120)
            return r.returncode, (r.stdout + r.stderr).strip()

    def test_verify_is_silent(self):
        rc, out = self.verify(self.text)
        self.assertEqual((rc, out), (0, ""))

    def test_verify_would_notice_a_mistake(self):
        # The check above means something only if verify speaks up about a bad line.
        broken = dict(self.text)
        broken["rstmon.service"] = broken["rstmon.service"].replace(
            "ProtectSystem=full", "ProtectSystem=bogus")
        rc, out = self.verify(broken)
        self.assertIn("rstmon.service:", out)
        self.assertIn("bogus", out)

    def test_rstmon_service(self):
        s = settings(self.text["rstmon.service"])
        self.assertEqual(s["ExecStart"],
                         ["/usr/local/bin/rstmon --config /etc/rstmon/rstmon.yaml $RSTMON_ARGS"])
        self.assertEqual(s["Requires"], ["rstmon-hugepages.service"])
        self.assertIn("rstmon-hugepages.service", s["After"])
        self.assertEqual(s["Restart"], ["on-failure"])
        self.assertEqual(s["RestartSec"], ["5s"])
        # a bad config (exit 2) is not retried
        self.assertEqual(s["RestartPreventExitStatus"], ["2"])
        self.assertEqual(s["LimitMEMLOCK"], ["infinity"])
        self.assertEqual(s["StandardOutput"], ["journal"])
        self.assertEqual(s["StandardError"], ["journal"])
        self.assertEqual(s["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
            self.assertEqual(s[key], ["yes"], key)
        self.assertEqual(s["ProtectSystem"], ["full"])
        # DPDK needs the device files and a writable /sys
        self.assertNotIn("PrivateDevices", s)
        self.assertNotIn("ProtectKernelTunables", s)
        self.assertNotIn("DeviceAllow", s)
        self.assertIn("AF_PACKET", s["RestrictAddressFamilies"][0].split())
        # the dedicated-user alternative is documented, commented out
        self.assertRegex(self.text["rstmon.service"],
                         r"(?m)^#AmbientCapabilities=CAP_IPC_LOCK CAP_SYS_RAWIO CAP_NET_ADMIN CAP_NET_RAW")

    def test_hugepages_service(self):
        s = settings(self.text["rstmon-hugepages.service"])
        self.assertEqual(s["Type"], ["oneshot"])
        self.assertEqual(s["RemainAfterExit"], ["yes"])
        self.assertEqual(s["ExecStart"], ["/usr/local/sbin/rstmon-hugepages-and-bind setup"])
        self.assertEqual(s["ExecStop"], ["/usr/local/sbin/rstmon-hugepages-and-bind restore"])
        self.assertEqual(s["Before"], ["rstmon.service"])
        # its state survives between setup and restore, apart from rstmon's own files
        self.assertEqual(s["Environment"], ["RSTMON_STATE_DIR=/run/rstmon-hugepages"])
        self.assertEqual(s["RuntimeDirectory"], ["rstmon-hugepages"])


if __name__ == "__main__":
    unittest.main()
