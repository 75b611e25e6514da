"""Where the device side lives, in a checkout or in an installed wheel: the packages and the board folders.

The wheel carries boards/ as sp_tool/boards, so deploying works from any
directory; in a checkout the folder is boards/ next to sp_tool/.

This is the one list of what goes onto a board: sp deploy and the virtual
board copy device_files(), manifest.py freezes DEVICE_PACKAGES (a test
checks it) and package.json, the mip list, is generated from here:
python -m sp_tool.files --package-json > package.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
from importlib.metadata import PackageNotFoundError, version
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


def is_folder_path(board: str) -> bool:
    """./myboard, ../x, /abs/path: a folder of one's own; a bare name is one of boards/."""
    return board in ('.', '..') or any(sep and sep in board for sep in (os.sep, os.altsep, '/'))


def board_dir(board: str) -> str:
    """The folder holding a board's own files (main.py, config.py, ...): a name from boards/, or a folder path."""
    if is_folder_path(board):
        if not os.path.isdir(board):
            raise BoardFilesError('no board folder %s' % board)
        return os.path.abspath(board)
    bdir = os.path.join(boards_dir(), board)
    if not os.path.isdir(bdir):
        raise BoardFilesError('unknown board %r (boards: %s; or a folder path such as ./%s)'
                              % (board, ', '.join(board_names()), board))
    return bdir


def package_files() -> List[Tuple[str, str]]:
    """[(local path, board path)] of the device packages."""
    files = []
    for pkg in DEVICE_PACKAGES:
        pdir = package_dir(pkg)
        names = _py_files(pdir)
        if '__init__.py' not in names:
            raise BoardFilesError('%s/ is missing or not a package' % pkg)
        files += [(os.path.join(pdir, n), pkg + '/' + n) for n in names]
    return files


def device_files(board: str) -> List[Tuple[str, str]]:
    """[(local path, board path)]: the device packages, then the board's own *.py at the board's root."""
    bdir = board_dir(board)
    own = _py_files(bdir)
    if 'main.py' not in own:
        raise BoardFilesError('%s has no main.py' % bdir)
    return package_files() + [(os.path.join(bdir, n), n) for n in own]


def package_json() -> str:
    """package.json for mpremote mip: the device packages, each file at its own path."""
    try:
        release = version('sp-dual')
    except PackageNotFoundError:
        release = '0.0.0'
    urls = ',\n'.join('    [%s, %s]' % (json.dumps(remote), json.dumps(remote)) for _, remote in package_files())
    return '{\n  "urls": [\n%s\n  ],\n  "version": %s\n}\n' % (urls, json.dumps(release))


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m sp_tool.files',
                                     description='Print package.json (the mip list) from the one list of device files.')
    parser.add_argument('--package-json', action='store_true', required=True, help='print package.json')
    parser.parse_args()
    print(package_json(), end='')


if __name__ == '__main__':
    main()

