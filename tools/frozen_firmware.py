"""The qemu board's firmware with the device packages frozen in: their bytecode and names stay in flash.

    python3 -m tools.frozen_firmware [--heap 32k|140k]

Builds MicroPython's qemu port (MPS2-AN385) from the source tarball in
$SP_MICROPYTHON_SRC, else ../shared/micropython-src beside the repository,
with a manifest made from this checkout: sp_common and sp_micropython as
packages, boards/qemu's config.py and main.py as modules, and asyncio, as
the project's manifest.py freezes them into a board's firmware. The result is
cached ($XDG_CACHE_HOME/sp-dual, else ~/.cache/sp-dual) per version of the
sources and the heap size; a build takes about 20 s. Needs make and
arm-none-eabi-gcc with newlib (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi).
Prints the path of the firmware.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from sp_tool.files import DEVICE_PACKAGES, device_files
from tools import needs
from tools.needs import shared_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = 'micropython-1c3c201149-qemu.tar.gz'
HEAPS = {'32k': 32768, '140k': 143360}
MANIFEST = """include("$(MPY_DIR)/extmod/asyncio")
%s
module("config.py", base_path=%r)
module("main.py", base_path=%r)
"""


class FirmwareBuildError(RuntimeError):
    pass


def tarball():
    return os.path.join(shared_dir('SP_MICROPYTHON_SRC', 'micropython-src'), TARBALL)


def missing():
    """Why the frozen firmware cannot be built here and how to fix it, or None when it can."""
    return needs.missing('MicroPython source', 'SP_MICROPYTHON_SRC', 'micropython-src', (TARBALL,),
                         ('make', 'arm-none-eabi-gcc'), 'make gcc-arm-none-eabi libnewlib-arm-none-eabi')


def _key(heap):
    """What the firmware depends on: the source tarball, the frozen files and the heap size."""
    digest = hashlib.sha256(heap.encode())
    with open(tarball(), 'rb') as f:
        digest.update(f.read())
    for local, remote in device_files('qemu'):
        digest.update(remote.encode())
        with open(local, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def frozen_firmware(heap='32k'):
    """The path of the firmware.elf with the checkout's device code frozen in, built if not cached."""
    reason = missing()
    if reason:
        raise FirmwareBuildError(reason)
    cache = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache'),
                         'sp-dual')
    elf = os.path.join(cache, 'qemu-frozen-%s-%s.elf' % (heap, _key(heap)))
    if os.path.isfile(elf):
        return elf
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='micropython-') as work:
        with tarfile.open(tarball()) as tar:
            tar.extractall(work)
        src = os.path.join(work, 'micropython')
        placeholder = os.path.join(work, 'mpylib')   # the port's Makefile wants micropython-lib's folder to exist
        os.mkdir(placeholder)
        with open(os.path.join(placeholder, 'README.md'), 'w') as f:
            f.write('micropython-lib is not needed: nothing is required from it\n')
        board = os.path.join(ROOT, 'boards', 'qemu')
        packages = '\n'.join('package(%r, base_path=%r)' % (name, ROOT) for name in DEVICE_PACKAGES)
        manifest = os.path.join(work, 'frozen.py')
        with open(manifest, 'w') as f:
            f.write(MANIFEST % (packages, board, board))
        for cmd in (['make', '-j2', '-C', os.path.join(src, 'mpy-cross')],
                    ['make', '-j2', '-C', os.path.join(src, 'ports', 'qemu'), 'BOARD=MPS2_AN385',
                     'MICROPY_HEAP_SIZE=%d' % HEAPS[heap], 'MPY_LIB_DIR=' + placeholder,
                     'FROZEN_MANIFEST=' + manifest]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise FirmwareBuildError('building the frozen firmware failed: %s' % (done.stdout + done.stderr)[-2000:])
        built = os.path.join(src, 'ports', 'qemu', 'build-MPS2_AN385', 'firmware.elf')
        fd, part = tempfile.mkstemp(dir=cache, suffix='.part')   # two builds at once each write their own
        os.close(fd)
        shutil.copy(built, part)
        os.replace(part, elf)
    return elf


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python3 -m tools.frozen_firmware', description=__doc__.split('\n\n')[0])
    ap.add_argument('--heap', choices=sorted(HEAPS), default='32k')
    args = ap.parse_args(argv)
    try:
        print(frozen_firmware(args.heap))
    except FirmwareBuildError as e:
        print('frozen firmware: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
