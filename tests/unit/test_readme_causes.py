#!/usr/bin/env python3
"""The README's cause and stage tables are the binary's own (`rstmon --list-causes`): docs
derive from the one cause list in lib/classify/taxonomy.hpp and cannot drift from it."""
import subprocess
import sys
import unittest

RSTMON, ROOT = sys.argv[1], sys.argv[2]
del sys.argv[1:3]


class ReadmeCauses(unittest.TestCase):
    def test_readme_holds_the_generated_tables(self):
        out = subprocess.run([RSTMON, "--list-causes"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        self.assertIn("| `port_closed` |", out)
        self.assertEqual(out.count("\n| `"), 18 + 7, "18 causes and 7 stages expected")
        readme = open(f"{ROOT}/README.md", encoding="utf-8").read()
        self.assertIn(out.strip(), readme,
                      "README cause/stage tables differ from `rstmon --list-causes`; paste its output")


if __name__ == "__main__":
    unittest.main(verbosity=2)
