"""How much the simulator can take: sustained originates/s and concurrent channels.

    .venv/bin/python bench/simulator_bench.py [--runs 3] [--seconds 6] [--window 400]

Starts `autocall-simulator` as its own process (as in the tests and the demo), then drives it with a
bare socket client (no daemon, no greenswitch): subscribes to what the daemon listens to, pipelines
`bgapi originate` with at most --window replies outstanding for --seconds, and counts what comes
back. Every callee answers after 1 s and hangs up 8 s later (simulated = real seconds here), so the
number of live channels climbs to about 9 x the originate rate. Prints each run and the medians.
Goals (docs/simulator.md): >= 500 originates/s and >= 2,000 concurrent channels on 2 cores.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SCENARIO = '[default]\nanswer_after = 1.0\nhangup_after = 8.0\n'
DAEMON_EVENTS = 'CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB CHANNEL_EXECUTE_COMPLETE DTMF HEARTBEAT'


def start_simulator(scenario_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'simulator',
            '--listen',
            '127.0.0.1:0',
            '--scenario',
            scenario_path,
            '--heartbeat',
            '20',
            '--log-level',
            'WARNING',
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'),
    )
    host, port = proc.stdout.readline().split()[1].rsplit(':', 1)
    return proc, (host, int(port))


class Counter:
    """Reads the event stream and counts replies and events by scanning the bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.replies = 0
        self.jobs = 0
        self.answers = 0
        self.hangups = 0
        self.max_live = 0
        self.stop = False

    def run(self):
        tail = b''
        while not self.stop:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            chunk = tail + data
            self.replies += chunk.count(b'Reply-Text: +OK Job-UUID') - tail.count(b'Reply-Text: +OK Job-UUID')
            self.jobs += chunk.count(b'Event-Name: BACKGROUND_JOB') - tail.count(b'Event-Name: BACKGROUND_JOB')
            self.answers += chunk.count(b'Event-Name: CHANNEL_ANSWER') - tail.count(b'Event-Name: CHANNEL_ANSWER')
            self.hangups += chunk.count(b'Event-Name: CHANNEL_HANGUP_COMPLETE') - tail.count(
                b'Event-Name: CHANNEL_HANGUP_COMPLETE'
            )
            self.max_live = max(self.max_live, self.replies - self.hangups)
            tail = chunk[-64:]


def one_run(address, seconds, window, events):
    sock = socket.create_connection(address)
    sock.recv(100)
    sock.sendall(b'auth ClueCon\n\n')
    sock.recv(100)
    sock.sendall(b'event plain %s\n\n' % events.encode())
    sock.recv(100)
    counter = Counter(sock)
    reader = threading.Thread(target=counter.run, daemon=True)
    reader.start()
    sent = 0
    started = time.monotonic()
    jobs_at_1s = None
    while time.monotonic() - started < seconds:
        if jobs_at_1s is None and time.monotonic() - started >= 1.0:
            jobs_at_1s = counter.jobs
        room = window - (sent - counter.replies)
        if room <= 0:
            time.sleep(0.001)
            continue
        batch = b''.join(
            b'bgapi originate {origination_uuid=%s,originate_timeout=30}sofia/gateway/gw1/09%08d '
            b'&park()\n\n' % (str(uuid.uuid4()).encode(), (sent + i) % 10**8)
            for i in range(min(room, 50))
        )
        sock.sendall(batch)
        sent += min(room, 50)
    elapsed = time.monotonic() - started
    # answers come 1 s after their originate: job results per second from then on is the rate the
    # simulator really sustains (replies alone could run ahead of channels it has not yet started)
    rate = (counter.jobs - jobs_at_1s) / (elapsed - 1.0)
    live = counter.max_live
    sock.close()
    counter.stop = True
    return rate, live, counter.jobs, counter.answers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--seconds', type=float, default=6.0)
    parser.add_argument('--window', type=int, default=400, help='max originates awaiting their reply')
    parser.add_argument(
        '--events', default=DAEMON_EVENTS, help='what to subscribe to (default: what the daemon uses; try ALL)'
    )
    args = parser.parse_args(argv)
    rates, lives = [], []
    with tempfile.NamedTemporaryFile('w', suffix='.toml', delete=False) as f:
        f.write(SCENARIO)
    try:
        for run in range(args.runs):
            proc, address = start_simulator(f.name)
            try:
                rate, live, jobs, answers = one_run(address, args.seconds, args.window, args.events)
            finally:
                proc.terminate()
                proc.wait(30)
            rates.append(rate)
            lives.append(live)
            print(
                'run %d: %.0f originates/s sustained (answered job results/s) over %.0f s, %d concurrent '
                'channels max (%d job results, %d answers)' % (run + 1, rate, args.seconds, live, jobs, answers)
            )
    finally:
        os.unlink(f.name)
    print('median: %.0f originates/s, %d concurrent channels' % (statistics.median(rates), statistics.median(lives)))


if __name__ == '__main__':
    main()
