"""The campaign's HTTP clients: import, re-import, DNC, stop and start, all along.

Every acknowledged (200) command is written to the `Journal` with the simulator's clock at
that moment, which is what the checks compare originate times against. Stops, starts and
delete + re-import of one queue are serialised (a lock per queue), so "stopped from its
acknowledged stop until the next start (or re-import) was sent" is exact, not a guess about
racing requests.

Two moves aim at the person rules (docs/daemon.md, "The same person"): a queue stopped,
deleted and imported again at once with the same customers while their calls are up, and
customers of one queue imported into another with the same ids and numbers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import time

import gevent
import gevent.event
import gevent.lock
import requests

from tests.soak.checks import Journal, tomorrow

log = logging.getLogger(__name__)

# Number prefixes the campaign's scenario maps to a callee behaviour (see rig.scenario()).
PREFIXES = ("0903", "0904", "0905", "0906", "0907", "0908", "0909", "0981", "0982", "0983")
FIELDS = {"contract_number": "HD123456", "upcoming_amount": 5000000, "upcoming_due_date": "2021-07-13"}
DONE, LATER, FAILED = "done", "later", "failed"  # what became of an import
BACKLOG = 40  # pending customers per queue above which clients stop adding more
TIMEOUT = 60  # seconds for one HTTP request (a held write lock must not fail it)


class Traffic:
    """`clients` greenlets hammering the API until `stop()`; what they were told goes to `journal`."""

    def __init__(
        self,
        urls: list[str],
        token: str,
        reader,
        queues: list[str],
        journal: Journal,
        clock,
        *,
        rng: random.Random,
        clients: int = 20,
    ):
        self.reader, self.queues, self.journal, self.clock = reader, queues, journal, clock
        self._urls = itertools.cycle(urls)  # each request to the next API instance, round robin
        self.headers = {"Authorization": f"Bearer {token}"}
        self.seeds = [rng.randrange(2**32) for _ in range(clients)]
        self.locks = {q: gevent.lock.Semaphore() for q in queues}
        self.gates = {q: _Gate() for q in queues}
        self.running = {q: True for q in queues}
        self._next_id = 0
        # Set while an operator's broken edit of the template is (or was, less than the API's
        # look-again interval ago) on disk: imports naming it are refused then, as they must be.
        self.template_broken = False
        self.template_fixed_at = float("-inf")  # monotonic time the broken template was last fixed
        self._stop = gevent.event.Event()
        self._greenlets = []

    def create_queues(self, rng: random.Random):
        """Each queue once, with a first batch, so the clients find them all."""
        session = requests.Session()
        for queue in self.queues:
            self._import(session, rng, queue, self._new_customers(rng, 5))

    def start(self):
        self._greenlets = [gevent.spawn(self._client, random.Random(seed)) for seed in self.seeds]

    def stop(self):
        self._stop.set()
        gevent.joinall(self._greenlets, timeout=TIMEOUT + 5)
        gevent.killall(self._greenlets)

    def start_stopped_by_dialer(self) -> int:
        """Start every queue the dialer stopped by itself while the clients hold it running (a
        template that could not speak to its customers, since fixed), as the operator would;
        under the queue's lock, so no client's stop is undone. Returns how many."""
        session, started = requests.Session(), 0
        for queue in self.queues:
            with self.locks[queue]:
                state = self._rows("SELECT state FROM queue WHERE code = ? AND state != 'deleted'", queue)
                if self.running[queue] and state == [("stopped",)]:
                    started += self._post(session, "/queue/start", {"queue_code": queue}) is not None
        return started

    def start_all(self):
        """Start every queue (the end of the campaign: let everything finish)."""
        session = requests.Session()
        for queue in self.queues:
            self._start_queue(session, queue)

    # --- one client ---

    def _client(self, rng: random.Random):
        session = requests.Session()
        actions = [
            (30, self._import_new),
            (15, self._reimport_finished),
            (8, self._dnc),
            (6, self._stop_one),
            (12, self._start_one),
            (10, self._read),
            (1, self._delete_and_reimport),
            (6, self._import_elsewhere),
        ]
        weights = [w for w, _ in actions]
        while not self._stop.is_set():
            _, action = rng.choices(actions, weights=weights)[0]
            try:
                action(session, rng)
            except requests.RequestException as e:
                self._api_error(f"{action.__name__}: {e}")
            self._stop.wait(rng.uniform(0.1, 0.6))

    def _import_new(self, session, rng):
        queue = rng.choice(self.queues)
        with self.gates[queue].shared():
            if self._pending(queue) < BACKLOG:
                self._import(session, rng, queue, self._new_customers(rng, rng.randint(1, 6)))

    def _reimport_finished(self, session, rng):
        queue = rng.choice(self.queues)
        with self.gates[queue].shared():
            self._reimport_finished_of(session, rng, queue)

    def _reimport_finished_of(self, session, rng, queue):
        if self._pending(queue) >= BACKLOG:
            return
        rows = self._rows(
            "SELECT c.ext_id, c.mobiles FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.code = ? AND q.state != 'deleted' AND c.state IN ('success', 'failed')"
            " ORDER BY random() LIMIT ?",
            queue,
            rng.randint(1, 4),
        )
        if rows:
            self._import(session, rng, queue, [{"id": ext, "mobiles": json.loads(m), **FIELDS} for ext, m in rows])

    def _dnc(self, session, rng):
        queue = rng.choice(self.queues)
        with self.gates[queue].shared():
            self._dnc_of(session, rng, queue)

    def _dnc_of(self, session, rng, queue):
        rows = self._rows(
            "SELECT c.ext_id FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.code = ? AND q.state != 'deleted' ORDER BY random() LIMIT ?",
            queue,
            rng.randint(1, 2),
        )
        ids = [ext for (ext,) in rows]
        if not ids:
            return
        reply = self._post(session, "/queue/dnc", {"queue_code": queue, "customers": [{"id": i} for i in ids]})
        if reply is not None:
            at = self._ack()
            for ext in ids:
                self.journal.dnc.setdefault((queue, ext), at)
            self.journal.counts["dnc"] += len(ids)

    def _stop_one(self, session, rng):
        queue = rng.choice(self.queues)
        with self.locks[queue]:
            if self.running[queue] and self._post(session, "/queue/stop", {"queue_code": queue}) is not None:
                self.journal.stopped[queue].append([self._ack(), None])
                self.running[queue] = False
                self.journal.counts["stop"] += 1

    def _start_one(self, session, rng):
        stopped = [q for q in self.queues if not self.running[q]]
        if stopped:
            self._start_queue(session, rng.choice(stopped))

    def _start_queue(self, session, queue):
        with self.locks[queue]:
            if self.running[queue]:
                return
            # From the moment the request leaves, the queue may be running again.
            self.journal.stopped[queue][-1][1] = self.clock()
            if self._post(session, "/queue/start", {"queue_code": queue}) is not None:
                self.running[queue] = True
                self.journal.counts["start"] += 1

    def _delete_and_reimport(self, session, rng):
        """Stop, delete and import again the same customers at once: calls in progress go on
        (the first queue's), and the new queue must not dial those people meanwhile."""
        queue = rng.choice(self.queues)
        if self.template_broken:
            return  # the re-import would be refused, and the queue gone
        with self.locks[queue], self.gates[queue].exclusive():
            rows = self._live_customers(queue, limit=BACKLOG)
            if self.running[queue]:
                if self._post(session, "/queue/stop", {"queue_code": queue}) is None:
                    return
                self.journal.stopped[queue].append([self._ack(), None])
                self.running[queue] = False
                self.journal.counts["stop"] += 1
            # Forgotten before the request leaves: a snapshot may come between its commit and its 200.
            self.journal.accepted = {(q, ext) for q, ext in self.journal.accepted if q != queue}
            self.journal.forgotten[queue] += 1
            if self._post(session, "/queue/delete", {"queue_code": queue}) is None:
                return
            self.journal.counts["delete"] += 1
            # From the moment the import leaves, the new queue of this code may be running.
            self.journal.stopped[queue][-1][1] = self.clock()
            self.running[queue] = True
            customers = [{"id": ext, "mobiles": json.loads(m), **FIELDS} for ext, m in rows]
            body = customers or self._new_customers(rng, 3)
            # Refused for now (a broken edit of the template, the database unavailable): the queue
            # is gone meanwhile, so again until it is taken.
            while self._import(session, rng, queue, body) == LATER:
                gevent.sleep(0.2)
            self.journal.counts["reimported_after_delete"] += len(customers)

    def _import_elsewhere(self, session, rng):
        """The same people (ids and numbers) imported into a second queue."""
        source, target = rng.sample(self.queues, 2)
        with self.gates[target].shared():
            rows = self._live_customers(source, limit=rng.randint(1, 4))
            if not rows or self._pending(target) >= BACKLOG:
                return
            self._import(session, rng, target, [{"id": ext, "mobiles": json.loads(m), **FIELDS} for ext, m in rows])
            self.journal.counts["imported_elsewhere"] += len(rows)

    def _read(self, session, rng):
        queue = rng.choice(self.queues)
        with self.gates[queue].shared():
            reply = session.get(f"{next(self._urls)}/v2/autocall/queue/{queue}", headers=self.headers, timeout=TIMEOUT)
        if reply.status_code == 503 and reply.headers.get("Retry-After"):
            self.journal.counts["api_503"] += 1  # the database unavailable (a restart of PostgreSQL's)
        elif reply.status_code != 200:
            self._api_error(f"GET queue {queue}: {reply.status_code} {reply.text[:200]}")

    # --- helpers ---

    def _new_customers(self, rng, count):
        customers = []
        for _ in range(count):
            self._next_id += 1
            numbers = [f"{rng.choice(PREFIXES)}{rng.randrange(10**6):06}" for _ in range(rng.choice((1, 1, 2)))]
            customers.append(
                {"id": f"K{self._next_id:06}", "mobiles": numbers, "priority": rng.randint(0, 3), **FIELDS}
            )
        return customers

    def _import(self, session, rng, queue, customers) -> str:
        """Import `customers` into `queue`: DONE (200), LATER (refused for now) or FAILED."""
        body = {
            "queue_code": queue,
            "template": "IVR-1",
            "customers": customers,
            "concurrent_call": rng.randint(4, 8),
            "max_recall_count": rng.randint(1, 2),
            "min_recall_duration": 3,
            "retry_when": rng.choice([None, ["no_answer", "busy", "short", "no_key"], ["no_answer", "unreachable"]]),
        }
        # The queue's concurrent_call may be this one from the moment it is sent until its
        # answer (checks.Journal), whatever the answer: a 503 of a connection lost at the commit
        # may follow a commit that took, and the queue's settings commit before its customers.
        limit = [self.clock(), float("inf"), body["concurrent_call"], False]
        self.journal.limits[queue].append(limit)
        reply, later = self._post_reply(session, "/queue", body)
        limit[1], limit[3] = self.clock(), reply is not None
        if reply is None:
            return LATER if later else FAILED
        success = reply["data"]["success"]
        self.journal.accepted.update((queue, ext) for ext in success)
        self.journal.counts["accepted"] += len(success)
        self.journal.counts["refused"] += len(reply["data"]["fail"])
        return DONE

    def _post(self, session, path, body):
        """The JSON reply of a 200, else None."""
        return self._post_reply(session, path, body)[0]

    def _post_reply(self, session, path, body) -> tuple[dict | None, bool]:
        """(the JSON reply of a 200 or None, whether it was refused for now): a 503 with
        Retry-After (the database unavailable) or, while the template is broken on disk, an
        import refused naming it, is counted; any other answer is an API error."""
        sent, broken = time.monotonic(), self.template_broken
        reply = session.post(f"{next(self._urls)}/v2/autocall{path}", json=body, headers=self.headers, timeout=TIMEOUT)
        if reply.status_code == 200:
            return reply.json(), False
        # Sent while the file was broken: a loaded API may answer after the fix was seen.
        broken = broken or self.template_broken or sent <= self.template_fixed_at
        if broken and path == "/queue" and _refused_for_template(reply):
            self.journal.counts["refused_template"] += 1
            return None, True
        if reply.status_code == 503 and reply.headers.get("Retry-After"):
            self.journal.counts["api_503"] += 1
            return None, True
        self._api_error(f"POST {path}: {reply.status_code} {reply.text[:200]}")
        return None, False

    def _ack(self) -> float:
        """The simulator's time now, remembered with the wall clock's (the daemon's attempt times)."""
        at = self.clock()
        self.journal.walls[at] = time.time()
        return at

    def _api_error(self, text):
        log.warning("API: %s", text)
        self.journal.api_errors.append(text)

    def _pending(self, queue) -> int:
        """Pending customers of the queue due today (those at the daily cap wait for tomorrow)."""
        return self._rows(
            "SELECT COUNT(*) FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.code = ? AND q.state != 'deleted' AND c.state = 'pending' AND c.next_call_at < ?",
            queue,
            tomorrow(),
        )[0][0]

    def _live_customers(self, queue, *, limit) -> list:
        """(id, mobiles JSON) of customers of the live queue `queue`, calls in progress first."""
        return self._rows(
            "SELECT c.ext_id, c.mobiles FROM customer c JOIN queue q ON q.id = c.queue_id"
            " WHERE q.code = ? AND q.state != 'deleted'"
            " ORDER BY c.state = 'calling' DESC, random() LIMIT ?",
            queue,
            limit,
        )

    def _rows(self, sql, *params):
        return self.reader.rows(sql, *params)


def _refused_for_template(reply) -> bool:
    errors = reply.json().get("errors") if reply.status_code == 400 else None
    return bool(errors) and errors[0].get("field") == "template"


class _Gate:
    """Many clients may use a queue at once (`shared`); a delete and re-import of it waits for
    them to finish and keeps new ones out until the queue exists again (`exclusive`)."""

    def __init__(self):
        self._users = 0
        self._idle = gevent.event.Event()
        self._idle.set()
        self._open = gevent.event.Event()
        self._open.set()

    @contextlib.contextmanager
    def shared(self):
        self._open.wait()
        self._users += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._users -= 1
            if not self._users:
                self._idle.set()

    @contextlib.contextmanager
    def exclusive(self):
        self._open.clear()
        try:
            self._idle.wait()
            yield
        finally:
            self._open.set()
