"""Two raw pseudo-terminals joined back to back, like a null-modem cable between two serial ports."""
import os
import select
import threading
import tty


class PtyCable:
    """path_a and path_b are real pty device files; bytes written to one come out of the other.

    The paths are symlinks so that unplug() / plug() can make the device vanish
    and return under the same name, as a USB adapter does.
    """

    def __init__(self, folder):
        self.path_a = os.path.join(folder, 'tty_a')
        self.path_b = os.path.join(folder, 'tty_b')
        self._thread = None
        self.plug()

    def plug(self):
        self._fds = []
        masters = []
        for path in (self.path_a, self.path_b):
            master, slave = os.openpty()
            tty.setraw(slave)
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(os.ttyname(slave), path)
            masters.append(master)
            self._fds += [master, slave]
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._relay, args=(masters,), daemon=True)
        self._thread.start()

    def _relay(self, masters):
        peer = {masters[0]: masters[1], masters[1]: masters[0]}
        while True:
            ready, _, _ = select.select(masters + [self._wake_r], [], [])
            if self._wake_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    continue
                os.write(peer[fd], data)

    def unplug(self):
        os.write(self._wake_w, b'x')
        self._thread.join(5)
        for fd in self._fds + [self._wake_r, self._wake_w]:
            os.close(fd)
        for path in (self.path_a, self.path_b):
            os.unlink(path)

    close = unplug
