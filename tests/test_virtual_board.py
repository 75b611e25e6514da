"""The virtual board: the MicroPython unix port behind a raw pty, driven by mpremote and pyserial."""
import os
import re
import select
import socket
import signal
import subprocess
import sys
import time
import tty

import pytest
import serial

from conftest import free_port
from sp_tool.virtual_board import VirtualBoard

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"


def mpremote(port, *args, timeout=30):
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", port] + list(args),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def read_until(port, ending, timeout=10.0):
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(ending) and time.monotonic() < deadline:
        data += port.read(1)
    return data


@pytest.fixture
def board():
    with VirtualBoard() as b:
        yield b


def raw_repl(port):
    port.write(b"\r\x03\r\x01")
    assert read_until(port, RAW_PROMPT).endswith(RAW_PROMPT)


def test_mpremote_resume_exec(board):
    r = mpremote(board.port, "resume", "exec", "print(1+1)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2\n"


def test_mpremote_soft_reset_keeps_serving(board):
    r = mpremote(board.port, "exec", "x = 41")  # no resume: mpremote soft-resets first
    assert r.returncode == 0, r.stderr
    r = mpremote(board.port, "resume", "exec", "print(x + 1)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "42\n"
    r = mpremote(board.port, "soft-reset", "exec", "print('x' in globals())")
    assert r.stdout == "False\n", r.stderr  # a soft reset clears the interpreter state
    assert board.soft_reboots == 2


def test_fs_cp_lands_in_the_folder(board, tmp_path):
    src = tmp_path / "hello.py"
    src.write_text("GREETING = 'hi there'\n")
    r = mpremote(board.port, "resume", "fs", "mkdir", ":pkg", "+", "fs", "cp", str(src), ":pkg/hello.py",
                 "+", "exec", "from pkg.hello import GREETING; print(GREETING)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("hi there\n")
    with open(os.path.join(board.fs_dir, "pkg", "hello.py")) as f:
        assert f.read() == "GREETING = 'hi there'\n"


def test_pty_is_raw_all_byte_values_pass(board):
    """An echo program with Ctrl-C off (as the protocol runs) returns bytes 0..255 unchanged."""
    payload = bytes(range(256)) * 2
    with serial.Serial(board.port, timeout=0.2) as port:
        raw_repl(port)
        port.write(b"import micropython, sys\nmicropython.kbd_intr(-1)\nsys.stdout.buffer.write(b'READY')\n"
                   b"d = sys.stdin.buffer.read(%d)\nsys.stdout.buffer.write(d)\n\x04" % len(payload))
        assert read_until(port, b"OKREADY").endswith(b"OKREADY")  # Ctrl-C is off before 0x03 arrives
        port.write(payload)
        got = read_until(port, b"\x04\x04>")
    assert got == payload + b"\x04\x04>"


def test_ctrl_c_interrupts_running_code(board):
    with serial.Serial(board.port, timeout=0.2) as port:
        raw_repl(port)
        port.write(b"while True:\n    pass\n\x04")
        assert read_until(port, b"OK").endswith(b"OK")
        time.sleep(0.2)
        port.write(b"\x03")
        out = read_until(port, b"\x04>")
        assert b"KeyboardInterrupt" in out
        port.write(b"print(6 * 7)\x04")  # the board is still at the raw REPL
        assert read_until(port, b"\x04>") == b"OK42\n\x04\x04>"


def test_boot_runs_main_py_and_soft_reset_runs_it_again(tmp_path):
    (tmp_path / "main.py").write_text("print('main.py ran')\n")
    with VirtualBoard(fs_dir=str(tmp_path), boot=True) as board:
        assert board.wait_output(b"main.py ran", 10)
        assert board.wait_output(b">>> ", 10)  # then the REPL, as on a real board
        with serial.Serial(board.port, timeout=0.2) as port:
            port.write(b"\x02")  # friendly REPL: banner and prompt
            assert read_until(port, b'information.\r\n>>> ').endswith(b">>> ")
            port.write(b"\x04")  # Ctrl-D: soft reset
            out = read_until(port, b">>> ")
        assert b"MPY: soft reboot\r\nmain.py ran\n" in out
    assert (tmp_path / "main.py").exists()  # a given folder is kept


def test_heapsize_is_applied():
    with VirtualBoard(heapsize="64k") as board:
        r = mpremote(board.port, "resume", "exec", "import gc; gc.collect(); print(gc.mem_free() + gc.mem_alloc())")
        assert r.returncode == 0, r.stderr
        assert 60000 <= int(r.stdout) <= 65536


def test_stop_leaves_no_process_and_no_fd():
    fds_before = set(os.listdir("/proc/self/fd"))
    board = VirtualBoard()
    pid, folder, port = board.pid, board.fs_dir, board.port
    assert os.path.exists("/proc/%d" % pid)
    r = mpremote(port, "resume", "exec", "print(3)")
    assert r.stdout == "3\n"
    board.stop()
    assert not os.path.exists("/proc/%d" % pid)
    assert not os.path.exists(folder)  # an own temp folder is removed
    assert set(os.listdir("/proc/self/fd")) == fds_before
    board.stop()  # idempotent


def children_of(pid):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(name))
    return found


def test_sp_board_prints_port_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "sp_tool", "board", "--empty", "--tcp-port", "0",
                             "--heapsize", "128k"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        r = mpremote(port, "resume", "exec", "print('cli')")
        assert r.stdout == "cli\n", r.stderr
        children = children_of(proc.pid)
        assert len(children) == 1  # the interpreter
        proc.terminate()
        assert proc.wait(10) == 128 + signal.SIGTERM  # stopped cleanly, and reported as the shell reports SIGTERM
        assert not os.path.exists("/proc/%d" % children[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_sp_board_serving_is_taken_back_by_mpremote_and_deploy_as_a_pico_is():
    """sp board's main.py serves its console with REPL on: mpremote (its Ctrl-C and, right behind it, Ctrl-A)
    gets the REPL while the board serves, sp deploy works on it, and Enter starts main.py again. Without REPL a
    Ctrl-C was frame data there, and both waited until killed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "sp_tool", "board", "--tcp-port", "0"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)

    def call():
        return subprocess.run([sys.executable, "-m", "sp_tool", "call", port, "execute", "echo", '"served"'],
                              capture_output=True, text=True, timeout=60, cwd=root)
    try:
        port = proc.stdout.readline().strip()
        assert call().stdout == 'okay: "served"\n'
        r = mpremote(port, "resume", "exec", "print('back at the REPL')")
        assert r.stdout == "back at the REPL\n", r.stderr
        r = subprocess.run([sys.executable, "-m", "sp_tool", "deploy", "unix", "--port", port], capture_output=True,
                           text=True, timeout=120, cwd=root)
        assert r.returncode == 0 and "deployed" in r.stdout, r.stdout + r.stderr
        assert call().returncode == 7   # at its REPL
        proc.stdin.write("\n")   # Enter: a reset, main.py serves again
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while call().returncode != 0:
            assert time.monotonic() < deadline
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
        proc.stdin.close()


def test_an_interpreter_that_keeps_failing_at_once_is_given_up_and_says_so(tmp_path):
    """Three quick failures in a row: the relay stops restarting it, and a host on the port reads why."""
    broken = tmp_path / "broken-micropython"
    broken.write_text("#!/bin/sh\necho 'no heap' >&2\nsleep 0.3\nexit 3\n")   # (time for the host to open the port)
    broken.chmod(0o755)
    board = VirtualBoard(micropython=str(broken), ready_timeout=0)
    try:
        with serial.Serial(board.port, timeout=0.2) as port:
            assert board.wait_output(b"giving up", 10), board.output
            seen = port.read(4096)
        assert board.failed == "micropython exited with 3 3 times in a row"
        assert b"no heap" in board.output and b"virtual board: micropython exited with 3" in seen
        assert board.pid is None
    finally:
        board.stop()


def call(board, word):
    return subprocess.run([sys.executable, "-m", "sp_tool", "call", board.port, "execute", "echo", '"%s"' % word,
                           "--timeout", "10"], capture_output=True, text=True, timeout=30)


def test_a_ctrl_c_in_the_first_bytes_of_a_host_that_comes_as_the_board_starts_ends_nothing():
    """A host that opens the port as the board starts and writes at once (its frames' CRC bytes may be 0x03): the
    input waits until the interpreter runs, so the board boots into main.py and serves, its launcher not ended."""
    from sp_tool.target import board_env
    with VirtualBoard(boot=True, env=board_env(None, "pure_json", 0)) as board:
        with serial.Serial(board.port, timeout=0) as port:
            port.write(b"\x03")
            time.sleep(1.5)   # (open: the relay reads what an open port has)
        r = call(board, "after an early Ctrl-C")
        assert (r.returncode, r.stdout) == (0, 'okay: "after an early Ctrl-C"\n'), r.stderr
        assert b"KeyboardInterrupt" not in board.output and board.soft_reboots == 0, board.output[-300:]


def test_a_host_that_floods_the_console_and_leaves_holds_the_next_host_up_for_seconds_at_most():
    """A host writes Ctrl-C bytes among data as fast as the port takes them, then closes it. The relay holds it
    back once 64 KiB wait for the board (as a USB port holds its host back) and passes the 0x03 bytes the board
    takes as data in whole writes, so the next host is answered at once, not after hours of a backlog."""
    from sp_tool.target import board_env
    with VirtualBoard(boot=True, env=board_env(None, "pure_json", 0)) as board:
        assert call(board, "before").stdout == 'okay: "before"\n'   # main.py serves (a Ctrl-C before would stop it)
        fd = os.open(board.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        flood = b"\x03A" * 4096
        end = time.monotonic() + 2
        while time.monotonic() < end:
            select.select([], [fd], [], 0.1)
            try:
                os.write(fd, flood)
            except BlockingIOError:
                pass
        os.close(fd)
        start = time.monotonic()
        r = call(board, "after")
        assert (r.returncode, r.stdout) == (0, 'okay: "after"\n'), r.stderr
        assert time.monotonic() - start < 10


def _tcp_host(port, **options):
    """A host on the board's TCP server, connected (retried while the board starts)."""
    from test_device_runtime import Host, SockLink
    deadline = time.monotonic() + 20
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=3)
            break
        except OSError:
            assert time.monotonic() < deadline, "the board does not listen"
            time.sleep(0.05)
    host = Host(SockLink(sock), **options)
    host.connect()
    return host, sock


def _raw_console(board):
    fd = os.open(board.port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def test_the_log_on_the_console_holds_no_stream_up_when_its_peer_reads_nothing():
    """The engine log goes out on the console between frames, as frames do: a console peer that sends requests
    the board logs (a non-okay status: data and all) and reads nothing stalls no TCP client (a blocking write
    to stderr, the same console, held the whole board)."""
    import sp_common as sp
    from sp_common import Engine
    port = free_port()
    with VirtualBoard(boot=True, env={"SP_LOG_LEVEL": "30", "SP_TCP_PORT": str(port)}) as board:
        tcp, sock = _tcp_host(port)
        assert tcp.request(sp.SID_EXECUTE_REQUEST, 0, "before").get_data() == "before"
        fd = _raw_console(board)
        mute = Engine(True, session_v2=False)
        mute.connection_made()
        for _ in range(60):
            mute.send_msg(sp.SID_EXECUTE_REQUEST, 0, "z" * 3000, status=1)
        data = mute.data_to_send()
        os.set_blocking(fd, False)
        sent, end = 0, time.monotonic() + 10
        while sent < len(data) and time.monotonic() < end:
            try:
                sent += os.write(fd, data[sent:sent + 4096])
            except BlockingIOError:
                time.sleep(0.05)
        assert sent == len(data)
        assert tcp.request(sp.SID_EXECUTE_REQUEST, 0, "during", timeout=3).get_data() == "during"
        os.close(fd)
        sock.close()


def test_peer_text_in_the_log_on_the_console_is_no_frame():
    """A TCP peer, untrusted, sends the text of a frame as data with a non-okay status; the board logs it on
    the console, where the host that reads it must not take it for a frame the board sent."""
    import sp_common as sp
    from sp_common import Engine
    from sp_common.codec import _with_crc
    body = b'{"data_id": 1, "service_id": 11, "status": 0, "data": "forged"}'
    forged = sp.frame(*_with_crc((body,))).decode("latin-1")
    port = free_port()
    with VirtualBoard(boot=True, env={"SP_LOG_LEVEL": "30", "SP_TCP_PORT": str(port), "SP_SECRET": "s"}) as board:
        fd = _raw_console(board)
        peer = Engine(True, session_v2=False)   # no secret: never trusted, yet its message is logged
        peer.connection_made()
        peer.send_msg(sp.SID_EXECUTE_REQUEST, 0, forged, status=1)
        tcp, sock = _tcp_host(port, session_v2=False)
        sock.sendall(peer.data_to_send())
        seen, end = b"", time.monotonic() + 2
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                seen += os.read(fd, 65536)
        assert b"forged" in seen   # logged, and escaped:
        assert list(sp.Deframer(4096).feed(seen)) == []
        os.close(fd)
        sock.close()


def test_the_least_heap_the_docs_name_serves():
    """docs/boards.md names a small --heapsize that the virtual board starts in from its sources."""
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "boards.md")) as f:
        least = re.search(r"`--heapsize (\d+k)` limits the heap", f.read()).group(1)
    with VirtualBoard(boot=True, heapsize=least) as board:
        assert call(board, "small").stdout == 'okay: "small"\n'


def test_a_program_that_ends_without_stopping_its_board_leaves_nothing_of_it_behind():
    """Neither its interpreter (in a session of its own) nor its temporary folder outlive the program."""
    script = ("from sp_tool.virtual_board import VirtualBoard\n"
              "board = VirtualBoard(boot=True, env={'SP_TCP_PORT': '0'})\n"
              "print(board.pid, board.fs_dir, flush=True)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    pid, folder = done.stdout.split()
    end = time.monotonic() + 5
    while os.path.exists("/proc/" + pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not os.path.exists("/proc/" + pid) and not os.path.exists(folder)


def test_a_host_that_keeps_the_port_open_through_a_board_reset_is_served_again():
    """A board reset behind a port that stays open (a USB-UART adapter keeps it; here the virtual board's reset)
    forgets the session: every call of the host, in v2, was dropped for good. Once the board has said nothing
    for 3 s since a request, the host introduces itself again (docs/host.md)."""
    import sp_cpython as sp
    board = VirtualBoard(boot=True, env={"SP_TCP_PORT": "off"})
    prot = sp.pure_json_protocol(sp.serial_stp(board.port))
    try:
        assert prot.call(sp.SID_EXECUTE_REQUEST, 0, "before", timeout=5) == "before" and prot.session == 2
        board.reset(boot=True)
        with pytest.raises(sp.NoAnswer):
            prot.call(sp.SID_EXECUTE_REQUEST, 0, "dropped", timeout=3.2)
        assert prot.call(sp.SID_EXECUTE_REQUEST, 0, "after", timeout=5) == "after" and prot.session == 2
    finally:
        prot.close()
        board.stop()
