"""sp deploy against the virtual board: files land, import, run; the deployed board serves the protocol."""
import binascii
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import serial

from sp_common import Engine
from sp_tool.deploy import ROMFS_MAIN, build_romfs
from sp_tool.errors import EXIT_DEPLOY, EXIT_USAGE
from sp_tool.files import device_files
from sp_tool.virtual_board import VirtualBoard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# golden vector (docs/protocol.md): read request 10/0, data null, then its CRC-32
READ_REQUEST = b'{"data_id": 0, "service_id": 10, "status": 0, "data": null}' + bytes.fromhex("45057bb4")
ENCODE = ("import binascii, sp_common; "
          "print(binascii.hexlify(sp_common.pure_json.encode(10, 0, 0, None)).decode())")
# A ROMFS partition of 64 KiB for the unix port, which has none: vfs.rom_ioctl as mpremote's romfs deploy uses it.
FAKE_ROMFS = """import sys
class vfs:
    part = bytearray(65536)
    def rom_ioctl(op, rom_id=0, *a):
        if op == 1: return 1
        if op == 2: return vfs.part
        if op == 4: vfs.part[a[0]:a[0] + len(a[1])] = a[1]
        return 4096 if op == 6 else 4
sys.modules['vfs'] = vfs
"""
READ_ROMFS = "import binascii, vfs; print(binascii.hexlify(vfs.rom_ioctl(2)).decode())"


def run_deploy(*args, timeout=60, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "sp_tool", "deploy"] + list(args), capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


def mpremote(port, *args):
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "resume"] + list(args),
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def expected_files(ext):
    files = {"main.py"} | {n for n in os.listdir(os.path.join(ROOT, "boards", "unix")) if n.endswith(".py")}
    for pkg in ("sp_common", "sp_micropython"):
        files |= {pkg + "/" + n[:-3] + ext for n in os.listdir(os.path.join(ROOT, pkg)) if n.endswith(".py")}
    return files


def board_tree(folder):
    found = set()
    for top, _dirs, names in os.walk(folder):
        for name in names:
            found.add(os.path.relpath(os.path.join(top, name), folder).replace(os.sep, "/"))
    return found


def romfs_files(image):
    """{path: contents} of the files in a ROMFS image (mpremote's format: varuint kind, length, payload)."""
    def uint(pos):
        value = 0
        while True:
            value, pos = (value << 7) | (image[pos] & 0x7F), pos + 1
            if not image[pos - 1] & 0x80:
                return value, pos

    def walk(pos, end, prefix, found):
        while pos < end:
            kind, pos = uint(pos)
            size, pos = uint(pos)
            if kind in (4, 5):  # directory, file: name, then records or one data record
                length, at = uint(pos)
                name = prefix + image[at:at + length].decode()
                if kind == 4:
                    walk(at + length, pos + size, name + "/", found)
                else:
                    data_len, at = uint(uint(at + length)[1])
                    found[name] = image[at:at + data_len]
            pos += size
        return found

    assert image[:3] == b"\xd2\xcd\x31"
    size, pos = uint(3)
    return walk(pos, pos + size, "", {})


def romfs_expected():
    return {name[:-3] + ".mpy" for name in expected_files(".py")}


@pytest.fixture
def board():
    with VirtualBoard(env={"SP_TCP_PORT": "off"}) as b:
        yield b


@pytest.mark.parametrize("ext", [".py", ".mpy"])
def test_deploy_then_import(board, ext):
    r = run_deploy("unix", "--port", board.port, *(["--mpy"] if ext == ".mpy" else []))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    wanted = expected_files(ext)
    assert len([line for line in lines if re.match(r"\[ *\d+/%d\] " % len(wanted), line)]) == len(wanted)
    assert board_tree(board.fs_dir) == wanted  # only these: no stray .py next to a .mpy
    r = mpremote(board.port, "exec", ENCODE)
    assert r.returncode == 0, r.stderr
    assert binascii.unhexlify(r.stdout.strip()) == READ_REQUEST


def test_redeploy_py_over_mpy_replaces_the_packages(board):
    assert run_deploy("unix", "--port", board.port, "--mpy").returncode == 0
    r = run_deploy("unix", "--port", board.port)
    assert r.returncode == 0, r.stderr
    assert board_tree(board.fs_dir) == expected_files(".py")


def test_redeploy_sends_only_what_changed_and_removes_stale_files(board):
    assert run_deploy("unix", "--port", board.port).returncode == 0
    r = run_deploy("unix", "--port", board.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("(unchanged)") == len(expected_files(".py")), r.stdout
    with open(os.path.join(board.fs_dir, "main.py"), "w") as f:
        f.write("print('edited on the board')\n")
    with open(os.path.join(board.fs_dir, "sp_common", "gone.py"), "w") as f:
        f.write("STALE = 1\n")   # a module that no longer exists here
    r = run_deploy("unix", "--port", board.port)
    assert r.returncode == 0, r.stderr
    copied = [line for line in r.stdout.splitlines() if line.startswith("[") and not line.endswith("(unchanged)")]
    assert len(copied) == 1 and "] main.py (" in copied[0], r.stdout
    assert ", %d unchanged)" % (len(expected_files(".py")) - 1) in r.stdout
    assert board_tree(board.fs_dir) == expected_files(".py")
    with open(os.path.join(board.fs_dir, "main.py")) as f, open(os.path.join(ROOT, "boards", "unix", "main.py")) as g:
        assert f.read() == g.read()


def test_deploy_a_board_folder_of_ones_own(board, tmp_path):
    shutil.copytree(os.path.join(ROOT, "boards", "unix"), str(tmp_path / "myboard"))
    with open(str(tmp_path / "myboard" / "extra.py"), "w") as f:
        f.write("MINE = 42\n")
    r = run_deploy("./myboard", "--port", board.port, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert board_tree(board.fs_dir) == expected_files(".py") | {"extra.py"}
    r = run_deploy(str(tmp_path / "nothing-here"), "--port", board.port)
    assert r.returncode == EXIT_USAGE and "no board folder" in r.stderr, r.stderr


def test_deployed_board_boots_and_answers_read_asc_time(board):
    r = run_deploy("unix", "--port", board.port, "--mpy")
    assert r.returncode == 0, r.stderr
    board.reset(boot=True)  # power cycle: main.py starts the protocol on the console
    with serial.Serial(board.port, timeout=0.05) as port:
        engine = Engine(is_client=True, session_v2=False)   # it asks again and again while main.py starts
        engine.connection_made()
        answer = None
        deadline = time.monotonic() + 15
        next_send = 0
        while answer is None and time.monotonic() < deadline:
            if time.monotonic() >= next_send:  # main.py may still be starting: ask again
                engine.send_msg(10, 0, None)
                port.write(engine.data_to_send())
                next_send = time.monotonic() + 1.0
            engine.feed(port.read(4096))
            answer = engine.pop_received(11, 0)
    assert answer is not None, board.output[-500:]
    assert answer.get_status() == 0
    assert re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", answer.get_data())


def test_romfs_image_holds_exactly_the_device_files_as_mpy(tmp_path):
    image = build_romfs(device_files("unix"), str(tmp_path / "unix.romfs"))
    files = romfs_files(open(image, "rb").read())
    assert set(files) == romfs_expected()
    assert all(data[:2] == b"M\x06" for data in files.values())  # .mpy v6 headers


def test_romfs_on_a_board_without_a_partition_names_the_cause_and_leaves_it_usable(board):
    r = run_deploy("unix", "--port", board.port, "--romfs")
    assert r.returncode == EXIT_DEPLOY, r.stderr
    assert "has no ROMFS partition (mpremote: ROMFS is not enabled on this device)" in r.stderr
    assert "sp deploy unix --mpy" in r.stderr
    assert board_tree(board.fs_dir) == set()  # no main.py that would import a missing image
    r = mpremote(board.port, "exec", "print(6 * 7)")
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr


def test_romfs_writes_the_image_to_the_partition_and_main_py_to_the_filesystem(board):
    assert mpremote(board.port, "exec", FAKE_ROMFS).returncode == 0
    r = run_deploy("unix", "--port", board.port, "--romfs")
    assert r.returncode == 0, r.stderr
    assert "ROMFS0 partition has size 65536 bytes" in r.stdout and "[1/1] main.py" in r.stdout, r.stdout
    r = mpremote(board.port, "exec", READ_ROMFS)
    assert r.returncode == 0, r.stderr
    assert set(romfs_files(binascii.unhexlify(r.stdout.strip()))) == romfs_expected()
    assert board_tree(board.fs_dir) == {"main.py"}
    with open(os.path.join(board.fs_dir, "main.py")) as f:
        assert f.read() == ROMFS_MAIN


@pytest.mark.parametrize("how", [[], ["--romfs"]])
def test_no_such_port_fails_clearly(how):
    r = run_deploy("unix", "--port", "/dev/does-not-exist", *how)
    assert r.returncode != 0
    assert "does-not-exist" in r.stderr and "error" in r.stderr


def test_silent_port_times_out_clearly():
    master, slave = os.openpty()  # a port nobody answers on
    try:
        start = time.monotonic()
        r = run_deploy("unix", "--port", os.ttyname(slave), "--timeout", "2")
        assert time.monotonic() - start < 15
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode != 0
    assert "no answer from a board" in r.stderr


def test_a_board_whose_program_keeps_its_console_is_named_with_what_to_do(tmp_path):
    """A protocol program without REPL: mpremote cannot enter the raw REPL, and its traceback (with this host's
    paths) was the message. The port is a link to the pty: mpremote would wait on a /dev/pts device for good."""
    with VirtualBoard(boot=True, env={"SP_TCP_PORT": "off"}) as serving:
        port = tmp_path / "ttyBOARD"
        port.symlink_to(serving.port)
        r = run_deploy("unix", "--port", str(port))
    assert r.returncode == EXIT_DEPLOY, r.stderr
    assert r.stderr == ("sp deploy: error: the board on %s does not give mpremote its REPL: its program does not hand "
                        "the console back on Ctrl-C (a StdioStream without repl=True, for instance). Reset the board "
                        "and deploy within its STARTUP_DELAY_MS, or erase its flash. (Or a program left a long frame "
                        "unfinished just before, which the board reads to its end first: try again in a few "
                        "seconds.)\n" % port)


def test_a_frame_another_program_left_unfinished_does_not_keep_deploy_from_the_repl(tmp_path):
    """A program wrote the start of a frame to a board serving its console with repl=True and exited just before:
    mpremote's Ctrl-C was frame data until the board gave the frame up (500 ms of silence), and mpremote waited
    for a REPL that never came."""
    with VirtualBoard(boot=True, env={"SP_TCP_PORT": "off", "SP_REPL": "1"}) as serving:
        with serial.Serial(serving.port, timeout=1) as other:   # (the board's prompt banner read away)
            time.sleep(1)
            other.reset_input_buffer()
            other.write(b':<{"data_id": 0, "serv')
        r = run_deploy("unix", "--port", serving.port)
    assert r.returncode == 0, r.stderr


def test_a_file_an_interrupted_copy_left_open_is_closed_before_the_next_deploy_compares(board):
    """mpremote killed in the middle of a copy leaves the file open in the REPL's globals (f, w), as `resume` keeps
    them. On a Pico's LittleFS, closing it later (a collection, the reset after the deploy) wrote its first chunk
    over the file the next deploy had found or written whole: config.py cut to 256 bytes, and no protocol."""
    r = mpremote(board.port, "exec", "f=open('cut.txt','wb')\nw=f.write\nw(b'x' * 256)\nleft = f")   # (left: to look)
    assert r.returncode == 0, r.stderr
    r = run_deploy("unix", "--port", board.port)
    assert r.returncode == 0, r.stderr
    r = mpremote(board.port, "exec", "try:\n left.write(b'y')\nexcept (OSError, ValueError):\n print('closed')")
    assert (r.returncode, r.stdout.strip()) == (0, "closed"), (r.stdout, r.stderr)


def test_unknown_board_fails_clearly():
    r = run_deploy("no-such-board", "--port", "/dev/null")
    assert r.returncode != 0
    assert "unknown board 'no-such-board'" in r.stderr


@pytest.mark.parametrize("answer", ["(1542, '\\x1b]0;retitled by the board\\x07\\x1b[2J')", "(6.5, 'rp2')",
                                    "('6', 'rp2')", "(-1, 'rp2')", "(1542,)", "[1542, 'rp2', 3]", "{}",
                                    "1+" * 100000 + "1", "(" * 300 + ")" * 300])
def test_a_probe_answer_other_than_a_version_and_a_platform_is_refused(monkeypatch, answer):
    """What the board prints is the board's to choose: a platform that would drive the terminal, or a version
    that is no integer, is a clear error, not escape codes on the screen or a traceback."""
    from sp_tool import deploy
    monkeypatch.setattr(deploy, "_mpremote", lambda port, args, timeout: "banner\n" + answer + "\n")
    with pytest.raises(deploy.DeployError, match="unexpected answer from the board"):
        deploy.probe("board")


def _a_board_that_says(monkeypatch, tmp_path, script):
    """mpremote stood in for by a program that prints what a board's output would make it print."""
    from sp_tool import deploy
    fake = tmp_path / "fake_mpremote.py"
    fake.write_text(script)
    monkeypatch.setattr(deploy, "mpremote_cmd", lambda: [sys.executable, str(fake)])
    local = tmp_path / "a.py"
    local.write_text("x = 1\n")
    return deploy, [(str(local), "a.py")]


def test_a_copy_whose_board_keeps_printing_ends_in_its_time(monkeypatch, tmp_path):
    """A line a second, for good: each came within --timeout, and the copy went on for ever."""
    deploy, files = _a_board_that_says(monkeypatch, tmp_path, "import time\nwhile True:\n    print('tick', flush=True)\n"
                                                             "    time.sleep(0.2)\n")
    start = time.monotonic()
    with pytest.raises(deploy.DeployError, match="stopped answering after 0 of 1 files"):
        deploy._copy("board", files, 1.0, lambda line: None, prepare=False)
    assert time.monotonic() - start < 10


def test_what_the_board_prints_is_neither_progress_nor_raw_text(monkeypatch, tmp_path):
    """The board's output shares mpremote's stream: a forged 'cp' line with escape codes is no file of the copy,
    and a byte that is no UTF-8 is no traceback."""
    deploy, files = _a_board_that_says(monkeypatch, tmp_path, (
        "import sys\n"
        "sys.stdout.buffer.write(b'cp x :\\x1b]0;retitled\\x07\\x1b[2J\\nUp to date: \\x1b[2J\\n\\xff\\xfe\\n')\n"
        "sys.stdout.buffer.write(b'cp a.py :a.py\\n')\n"))
    said = []
    assert deploy._copy("board", files, 5.0, said.append, prepare=False) == 0
    assert said == ["[1/1] a.py (6 B)"]


def test_a_failed_mpremote_run_is_named_by_its_last_line(monkeypatch, tmp_path):
    """Of a traceback, the exception's message: not the lines above it, nor what the board printed before."""
    deploy, _files = _a_board_that_says(monkeypatch, tmp_path, (
        "import sys\nprint('board output')\n"
        "print('Traceback (most recent call last):\\n  File \"/home/me/mpremote/main.py\", line 1, in main\\n'\n"
        "      'mpremote.transport.TransportError: could not exec command', file=sys.stderr)\nsys.exit(1)\n"))
    with pytest.raises(deploy.DeployError) as failed:
        deploy.probe("board")
    assert str(failed.value) == "mpremote on board failed: mpremote.transport.TransportError: could not exec command"
