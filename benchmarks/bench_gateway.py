"""Calls through broker + gateway beside direct host <-> board calls, for 1, 2, 4, 8 and 16 virtual boards, in one run.

Each board is a virtual board (boards/unix/main.py) on loopback TCP. Direct:
one thread per board calls it with request() (execute echo, a small payload)
over its own sp_cpython link. Through the gateway: one thread per board calls
it with BoardClient (MQTT 5) through a mosquitto broker and one `sp gateway`
(its own process, as deployed) that holds every board's link. Each thread calls one after the other, so the
latency is a round trip and the rate is what that many callers get. A second table splits the CPU time of a
call among the processes it crosses (the callers' process, the boards, mosquitto, the gateway).

    python3 -m benchmarks.bench_gateway [--seconds S] [--boards 1,2,4,8,16]
"""
import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, List

import sp_cpython as sp
from benchmarks.stats import cpu_seconds, median_p99
from sp_tool.mqtt_client import BoardClient
from sp_tool.target import board_env
from sp_tool.virtual_board import VirtualBoard
from tools.mosquitto import Mosquitto, free_port

PAYLOAD = {'n': 1, 'text': 'sixteen bytes..'}


def run_callers(calls: List[Callable[[], None]], seconds: float):
    """(requests per second, latencies in s) of one thread per call, each calling for `seconds`."""
    latencies: List[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def loop(call):
        mine = []
        while time.perf_counter() < stop:
            start = time.perf_counter()
            call()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
    threads = [threading.Thread(target=loop, args=(call,)) for call in calls]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - begin), latencies


def cpu_per_call(pids: List[List[int]], run: Callable[[], tuple]):
    """run()'s (rate, latencies, CPU us per call): of this process (the callers), then of each group of pids."""
    def now():
        return [time.process_time()] + [sum(cpu_seconds(pid) for pid in group) for group in pids]
    before = now()
    rate, latencies = run()
    return rate, latencies, [(a - b) * 1e6 / len(latencies) for a, b in zip(now(), before)]


def direct(ports: List[int], seconds: float, boards: List[int]):
    prots = [sp.pure_json_protocol(sp.tcp_client_stp('127.0.0.1', port)) for port in ports]

    def caller(prot):
        def call():
            answer = prot.request(sp.SID_EXECUTE_REQUEST, 0, PAYLOAD, 5)
            assert answer is not None and answer.get_data() == PAYLOAD, answer
        return call
    try:
        for prot in prots:
            assert prot.request(sp.SID_EXECUTE_REQUEST, 0, None, 10) is not None
        return cpu_per_call([boards], lambda: run_callers([caller(prot) for prot in prots], seconds))
    finally:
        for prot in prots:
            prot.close()


def ready(client: BoardClient) -> None:
    """Waits until the gateway has subscribed (a request before that is lost) and the board is online."""
    deadline = time.monotonic() + 20
    while True:
        try:
            if client.request('execute', 0, None, 1)['status'] == sp.STATUS_OKAY:
                return
        except TimeoutError:
            pass
        assert time.monotonic() < deadline, 'board %s did not come online' % client.board
        time.sleep(0.1)


def through_gateway(broker: Mosquitto, ports: List[int], seconds: float, boards: List[int]):
    names = ['b%d' % i for i in range(len(ports))]
    broker_url = broker.url
    gateway = subprocess.Popen([sys.executable, '-m', 'sp_tool', 'gateway', '--broker', broker_url]
                               + ['%s=tcp://127.0.0.1:%d' % (name, port) for name, port in zip(names, ports)],
                               stdout=subprocess.PIPE, text=True)
    gateway.stdout.readline()
    clients = [BoardClient(broker_url, name) for name in names]

    def caller(client):
        def call():
            answer = client.request('execute', 0, PAYLOAD, 5)
            assert answer['data'] == PAYLOAD, answer
        return call
    try:
        for client in clients:
            ready(client)
        return cpu_per_call([boards, [broker.proc.pid], [gateway.pid]],
                            lambda: run_callers([caller(client) for client in clients], seconds))
    finally:
        for client in clients:
            client.close()
        gateway.send_signal(signal.SIGINT)
        gateway.wait(10)
        gateway.stdout.close()


def ms(latencies: List[float]) -> str:
    median, p99 = median_p99(latencies)
    return '%.2f / %.2f ms' % (median * 1000, p99 * 1000)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=2.0, help='calling time per row and path (default 2)')
    parser.add_argument('--boards', default='1,2,4,8,16', help='board counts (default 1,2,4,8,16)')
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.boards.split(',')]
    broker = Mosquitto(tempfile.mkdtemp(prefix='bench-broker-'))
    ports = [free_port() for _ in range(max(counts))]
    boards = [VirtualBoard(boot=True, env=board_env(None, 'pure_json', port)) for port in ports]
    cpu = []
    try:
        print('| boards | direct: calls/s | direct: p50 / p99 | gateway: calls/s | gateway: p50 / p99 | rate ratio |')
        print('|---:|---:|---:|---:|---:|---:|')
        for n in counts:
            pids = [board.pid for board in boards[:n]]
            d_rate, d_lat, d_cpu = direct(ports[:n], args.seconds, pids)
            g_rate, g_lat, g_cpu = through_gateway(broker, ports[:n], args.seconds, pids)
            print('| %d | %.0f | %s | %.0f | %s | %.2f |' % (n, d_rate, ms(d_lat), g_rate, ms(g_lat), g_rate / d_rate),
                  flush=True)
            cpu.append((n, d_cpu, g_cpu))
        print()
        print('| boards | direct, CPU us per call: callers / boards | gateway, CPU us per call: '
              'callers / boards / mosquitto / gateway |')
        print('|---:|---:|---:|')
        for n, d_cpu, g_cpu in cpu:
            print('| %d | %s | %s |' % (n, ' / '.join('%.0f' % us for us in d_cpu), ' / '.join('%.0f' % us for us in g_cpu)))
    finally:
        for board in boards:
            board.stop()
        broker.stop()


if __name__ == '__main__':
    main()
