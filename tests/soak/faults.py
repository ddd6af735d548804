"""The campaign's faults, one method each (`_fault_<name>`), mixed into `campaign.Campaign`:
each strikes, and returns once the daemons work again. They use the campaign's
`sims` and `daemons` (one each per node; a switch fault strikes the node `_node()` draws),
`traffic`, `journal`, `settings`, `templates`, `clock`, `reader`, `disk` and `pg`."""

import logging
import subprocess
import sys
import time

import gevent

from daemon.store.postgres import WRITE_LOCK
from tests.daemon_fixtures import wait_until
from tests.db_faults import full_disk, write_lock
from tests.soak import checks
from tests.soak.rig import BROKEN, SPEAKS_DPD, rewrite

log = logging.getLogger(__name__)


class Faults:
    def _fault_kill9(self):
        daemon = self.daemons[self._node()]
        daemon.proc.kill9()
        daemon.start(self.settings.recovery)

    def _switch_fault(self, strike, *, restart: bool = False):
        """`strike(sim)` on one node's switch, then wait for its daemon to connect again."""
        i = self._node()
        sim, daemon = self.sims[i], self.daemons[i]
        before = daemon.connects()
        if restart:
            self.journal.restarts[i].append(sim.clock.now())
        strike(sim)
        daemon.wait_connected(before, self.settings.recovery)

    def _fault_drop(self):
        self._switch_fault(lambda sim: sim.drop_connections())

    def _fault_silence(self):
        self._switch_fault(lambda sim: sim.silence(self.settings.silence))

    def _fault_restart(self):
        self._switch_fault(lambda sim: sim.restart(), restart=True)

    def _fault_refuse(self):
        def refuse(sim):
            sim.refuse(2.0)
            sim.drop_connections()

        self._switch_fault(refuse)

    def _fault_slow(self):
        sim = self.sims[self._node()]
        sim.delay(1500)
        gevent.sleep(3.0)
        sim.delay(0)

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
        with write_lock(self.daemons[0].db_path):
            gevent.sleep(self.settings.lock_long)
        self._wait_resumed()

    def _fault_disk_full(self):
        """The disk under the database fills (its WAL cut first, so the next commit needs room)."""
        with full_disk(self.disk.path, self.daemons[0].db_path):
            gevent.sleep(self.settings.disk_full)
        self._wait_resumed()

    def _wait_resumed(self):
        if any(daemon.paused() for daemon in self.daemons):
            self.journal.counts["db_pauses"] += 1
        wait_until(lambda: not any(daemon.paused() for daemon in self.daemons), self.settings.recovery, 0.1)

    def _fault_pg_restart(self):
        """PostgreSQL crashes (every connection cut; a durable server keeps every commit) and
        comes back `pg_down` seconds later on the same port."""
        self.pg.restart(down=self.settings.pg_down)
        self._wait_resumed()

    def _fault_pg_lock(self):
        """Another session takes the store's write lock and holds it inside the daemons' busy timeout."""
        self._hold_pg_lock(self.settings.lock_hold)

    def _fault_pg_lock_long(self):
        """An operator's psql left in a transaction holding the store's write lock past every
        timeout: dialing pauses and the results wait until it goes."""
        self._hold_pg_lock(self.settings.lock_long)
        self._wait_resumed()

    def _hold_pg_lock(self, seconds: float):
        import psycopg

        location = self.reader.where
        with psycopg.connect(location.dsn, password=location.password, autocommit=True) as conn:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            gevent.sleep(seconds)
            conn.execute("COMMIT")

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
            [sys.executable, "-c", code, str(self.daemons[0].db_path), str(self.settings.lock_hold)], timeout=60
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
