"""manifest.py (for freezing the device packages into a firmware) names the device packages that exist."""
import os

from conftest import ROOT
from sp_tool.files import DEVICE_PACKAGES


def test_manifest_freezes_every_device_package():
    calls = []
    names = {'include': lambda path: calls.append(('include', path)),
             'package': lambda name: calls.append(('package', name))}
    with open(os.path.join(ROOT, 'manifest.py')) as f:
        exec(compile(f.read(), 'manifest.py', 'exec'), names)
    assert calls[0] == ('include', '$(BOARD_DIR)/manifest.py')
    frozen = [name for kind, name in calls if kind == 'package']
    assert frozen == list(DEVICE_PACKAGES)
    assert all(os.path.isfile(os.path.join(ROOT, name, '__init__.py')) for name in frozen)
