"""Where the device side lives, in a checkout or in an installed wheel: the packages and the board folders.

The wheel carries boards/ as sp_tool/boards, so deploying works from any
directory; in a checkout the folder is boards/ next to sp_tool/.
"""
from __future__ import annotations

import importlib.util
import os
from typing import List, Tuple

from .errors import CommandError

DEVICE_PACKAGES = ('sp_common', 'sp_micropython')


class BoardFilesError(CommandError):
    """A board or package folder is missing or incomplete."""


def boards_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, 'boards'), os.path.join(os.path.dirname(here), 'boards')):
        if os.path.isdir(candidate):
            return candidate
    raise BoardFilesError('no boards folder in %s or next to it' % here)


def board_names() -> List[str]:
    top = boards_dir()
    return sorted(d for d in os.listdir(top) if os.path.isfile(os.path.join(top, d, 'main.py')))


def package_dir(name: str) -> str:
    """The folder of a device package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BoardFilesError('%s/ is missing or not a package' % name)
    return list(spec.submodule_search_locations)[0]


def _py_files(folder: str) -> List[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith('.py'))


def device_files(board: str) -> List[Tuple[str, str]]:
    """[(local path, board path)]: the device packages, then boards/<board>/*.py at the board's root."""
    bdir = os.path.join(boards_dir(), board)
    if not os.path.isdir(bdir):
        raise BoardFilesError('unknown board %r (boards: %s)' % (board, ', '.join(board_names())))
    own = _py_files(bdir)
    if 'main.py' not in own:
        raise BoardFilesError('boards/%s has no main.py' % board)
    files = []
    for pkg in DEVICE_PACKAGES:
        pdir = package_dir(pkg)
        names = _py_files(pdir)
        if '__init__.py' not in names:
            raise BoardFilesError('%s/ is missing or not a package' % pkg)
        files += [(os.path.join(pdir, n), pkg + '/' + n) for n in names]
    return files + [(os.path.join(bdir, n), n) for n in own]

