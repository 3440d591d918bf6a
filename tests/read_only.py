"""A directory tree made unwritable for a test, even for root (with chattr)."""

import os
import shutil
import subprocess

import pytest


class read_only:
    """Make a directory tree unwritable, even for root (with chattr), or skip the test."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        if os.geteuid() != 0:
            subprocess.run(["chmod", "-R", "a-w", self.path], check=True)
            self.undo = ["chmod", "-R", "u+w", self.path]
        elif shutil.which("chattr") and subprocess.run(
                ["chattr", "-R", "+i", self.path], capture_output=True).returncode == 0:
            self.undo = ["chattr", "-R", "-i", self.path]
        else:
            pytest.skip("cannot make a directory read-only for root here")

    def __exit__(self, *exc):
        subprocess.run(self.undo, check=True)
