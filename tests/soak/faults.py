"""The campaign's faults, one method each (`_fault_<name>`), mixed into `campaign.Campaign`:
each strikes, and returns once the daemon works again. They use the campaign's `daemon`,
`sim`, `api`, `traffic`, `journal`, `settings`, `templates`, `clock` and `disk`."""

import logging
import subprocess
import sys
import time

import gevent

from tests.daemon_fixtures import wait_until
from tests.db_faults import full_disk, write_lock
from tests.soak import checks
from tests.soak.rig import BROKEN, SPEAKS_DPD, rewrite

log = logging.getLogger(__name__)


class Faults:
    def _fault_kill9(self):
        self.daemon.proc.kill9()
        self.daemon.start(self.settings.recovery)

    def _fault_drop(self):
        before = self.daemon.connects()
        self.sim.drop_connections()
        self.daemon.wait_connected(before, self.settings.recovery)

    def _fault_silence(self):
        before = self.daemon.connects()
        self.sim.silence(self.settings.silence)
        self.daemon.wait_connected(before, self.settings.recovery)

    def _fault_restart(self):
        before = self.daemon.connects()
        self.journal.restarts.append(self.sim.clock.now())
        self.sim.restart()
        self.daemon.wait_connected(before, self.settings.recovery)

    def _fault_refuse(self):
        before = self.daemon.connects()
        self.sim.refuse(2.0)
        self.sim.drop_connections()
        self.daemon.wait_connected(before, self.settings.recovery)

    def _fault_slow(self):
        self.sim.delay(1500)
        gevent.sleep(3.0)
        self.sim.delay(0)

    def _fault_template_edit(self):
        """An operator edits IVR-1 while queues run: a valid change that speaks a field the
        customers lack (each queue that claims one stops, saying how many lack it; nobody
        fails), then a broken one (the API refuses imports naming it, the dialer keeps the last
        good version) and a restart of the daemon meanwhile (no good version: the queues wait),
        then the file as it was; the queues the dialer stopped are started again."""
        path, hold = self.templates / "IVR-1.toml", self.settings.template_hold
        good = path.read_text(encoding="utf-8")
        rewrite(path, good.replace(*SPEAKS_DPD, 1))
        gevent.sleep(hold)
        self.traffic.template_broken = True
        rewrite(path, good.replace(*BROKEN, 1))
        gevent.sleep(hold)
        self._fault_kill9()
        gevent.sleep(hold / 2)
        rewrite(path, good)
        gevent.sleep(hold)  # the API and the daemon have looked at the file again
        self.traffic.template_broken, self.traffic.template_fixed_at = False, time.monotonic()
        self.journal.counts["template_stops_restarted"] += self.traffic.start_stopped_by_dialer()

    def _fault_db_lock_long(self):
        """An operator's `sqlite3` left in BEGIN IMMEDIATE, past every timeout of the daemon's:
        it pauses dialing and keeps its results until the lock goes, then writes them."""
        with write_lock(self.daemon.db_path):
            gevent.sleep(self.settings.lock_long)
        self._wait_resumed()

    def _fault_disk_full(self):
        """The disk under the database fills (its WAL cut first, so the next commit needs room)."""
        with full_disk(self.disk.path, self.daemon.db_path):
            gevent.sleep(self.settings.disk_full)
        self._wait_resumed()

    def _wait_resumed(self):
        if self.daemon.paused():
            self.journal.counts["db_pauses"] += 1
        wait_until(lambda: not self.daemon.paused(), self.settings.recovery, 0.1)

    def _fault_db_lock(self):
        """Another process takes the write lock (BEGIN IMMEDIATE), holds it, commits."""
        code = (
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "time.sleep(float(sys.argv[2]))\n"
            "c.execute('COMMIT')\n"
        )
        held = subprocess.run(
            [sys.executable, "-c", code, str(self.daemon.db_path), str(self.settings.lock_hold)], timeout=60
        )
        assert held.returncode == 0, "the lock holder failed"

    def _fault_clock_step(self):
        """The host's wall clock steps 10 minutes back, or (when it is back) forward again. Near
        local midnight it is left alone: a step there moves the day that the daily cap counts."""
        now = time.time() + self.clock.offset
        midnight = checks.day_start(now)
        if min(now - midnight, midnight + 86400 - now) < 1200:
            log.info("clock step skipped: too near midnight")
            self.journal.counts["clock_step_skipped"] += 1
            return
        self.clock.step(-600 if self.clock.offset == 0 else -self.clock.offset)
        gevent.sleep(1.2)  # libfaketime looks at its file once a second
