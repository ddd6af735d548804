"""Run `autocall-daemon` with candidate performance fixes applied in memory, to measure them
before anyone changes daemon/*. For benchmarks only; nothing here ships.

    .venv/bin/python bench/daemon_experiments.py --variants fastparse,nohangup -- --config PATH

Variants (comma-separated, any combination):
  fastparse  daemon.esl: decode an event's header block once and URL-decode only values that
             contain '%' (today every line is decoded and every value goes through unquote)
  lazyparse  daemon.esl: keep an event's decoded header block and find a header by string
             search when asked (`get`, `name`, `unique_id`); build pairs/headers only on demand.
             The daemon reads 3-8 of an event's 60-230 headers
  nohangup   subscribe without CHANNEL_HANGUP: no daemon code reads it (the call ends on
             CHANNEL_HANGUP_COMPLETE), yet every call pays for parsing it
  nodelay    TCP_NODELAY on the daemon's event-socket connection (Nagle + delayed ACK stalls)
  gclog      log (WARNING, bench.gc) every garbage collection over 5 ms: evidence for pauses
  gcfreeze   gc.freeze() after imports and gc.set_threshold(50000, 20, 100): fewer, shorter
             full collections
  batchclaim the dialer takes up to 50 customers per trip to the ledger thread (Dialer._dial_some),
             each claim still its own transaction
  switch     sys.setswitchinterval(0.0005): the ledger thread gets the GIL back sooner from the
             gevent loop (Python's default is 5 ms)
"""
import argparse
import sys
from urllib.parse import unquote


def _fast_header_pairs(text, error):
    pairs = []
    append = pairs.append
    for line in text.split('\n'):
        if not line or line == '\r':
            continue
        name, sep, value = line.partition(':')
        if not sep or not name:
            raise error('header line without a name: %r' % line[:80])
        if value[:1] == ' ':
            value = value[1:]
        if value[-1:] == '\r':
            value = value[:-1]
        append((name, unquote(value) if '%' in value else value))
    return pairs


def apply_fastparse(esl):
    def parse_header_lines(lines):
        return _fast_header_pairs(b'\n'.join(lines).decode('utf-8', 'replace'), esl.ESLProtocolError)

    def parse_plain_event(data):
        head, _, rest = data.partition(b'\n\n')
        event = esl.ESLEvent(_fast_header_pairs(head.decode('utf-8', 'replace'), esl.ESLProtocolError),
                             content_type='text/event-plain')
        length = esl._content_length(event)
        if len(rest) < length:
            raise esl.ESLProtocolError('event body shorter than its Content-Length %d' % length)
        event.body = rest[:length].decode('utf-8', 'replace')
        return event

    esl._parse_header_lines = parse_header_lines
    esl.parse_plain_event = parse_plain_event
    esl._EVENT_PARSERS['text/event-plain'] = parse_plain_event


def apply_lazyparse(esl):
    class LazyEvent(esl.ESLEvent):
        """Keeps the decoded header block; `get` finds one header by a string search, and the
        full pairs/headers are built only if someone asks for them."""
        __slots__ = ('_text', '_parsed')

        def __init__(self, text, body, content_type):
            self._text, self._parsed = '\n' + text, False
            self.body, self.content_type = body, content_type

        def _parse(self):
            if not self._parsed:
                pairs = _fast_header_pairs(self._text, esl.ESLProtocolError)
                esl.ESLEvent.pairs.__set__(self, pairs)
                headers = {}
                for name, value in pairs:
                    headers.setdefault(name, value)
                esl.ESLEvent.headers.__set__(self, headers)
                self._parsed = True

        @property
        def pairs(self):
            self._parse()
            return esl.ESLEvent.pairs.__get__(self)

        @property
        def headers(self):
            self._parse()
            return esl.ESLEvent.headers.__get__(self)

        @property
        def name(self):
            return self.get('Event-Name', '')

        @property
        def unique_id(self):
            return self.get('Unique-ID')

        def get(self, name, default=None):
            text, key = self._text, '\n' + name + ': '
            start = text.find(key)
            if start < 0:
                return default
            start += len(key)
            end = text.find('\n', start)
            value = text[start:end] if end >= 0 else text[start:]
            if value[-1:] == '\r':
                value = value[:-1]
            return unquote(value) if '%' in value else value

    def parse_plain_event(data):
        head, _, rest = data.partition(b'\n\n')
        event = LazyEvent(head.decode('utf-8', 'replace'), '', 'text/event-plain')
        length = esl._content_length(event)
        if len(rest) < length:
            raise esl.ESLProtocolError('event body shorter than its Content-Length %d' % length)
        event.body = rest[:length].decode('utf-8', 'replace')
        return event

    esl.parse_plain_event = parse_plain_event
    esl._EVENT_PARSERS['text/event-plain'] = parse_plain_event


def apply_gclog():
    """Log every garbage collection that takes over 5 ms (generation, ms, objects collected)."""
    import gc
    import logging
    import time
    log = logging.getLogger('bench.gc')
    started = {}

    def callback(phase, info):
        if phase == 'start':
            started['t'] = time.perf_counter()
        elif 't' in started:
            ms = 1000 * (time.perf_counter() - started.pop('t'))
            if ms > 5:
                log.warning('gc generation %d took %.1f ms (%d collected, %d objects tracked)',
                            info['generation'], ms, info['collected'], len(gc.get_objects()))
    gc.callbacks.append(callback)


def apply_gcfreeze():
    """Move everything alive after start-up into the permanent generation and collect less
    often: full collections stop walking the imported modules' objects."""
    import gc
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def apply_nodelay(esl):
    """TCP_NODELAY on the event socket: without it Nagle holds a small command back until the
    previous one is ACKed, and the peer delays that ACK by up to 40 ms."""
    import socket
    create = esl.gevent.socket.create_connection

    def create_connection(*args, **kwargs):
        sock = create(*args, **kwargs)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    esl.gevent.socket.create_connection = create_connection


def apply_batchclaim(batch=50):
    """The dialer claims up to `batch` customers of a queue per trip to the ledger thread (each
    claim still its own transaction) instead of one trip per customer."""
    from daemon import dialer as dialer_mod

    def _dial_some(self):
        now = self.clock()
        if not self.window.is_open(now):
            return min(self.window.next_open(now) - now, 30.0)
        if now - self._queues_at >= dialer_mod.QUEUE_REFRESH:
            self.queues, self._queues_at = self.ledger.running_queues(), now
        limit = self.dialer_config.channel_limit
        while len(self.calls) < limit and not self._stopping.is_set():
            queue = self._next_queue(now)
            if queue is None:
                break
            room = min(limit - len(self.calls), queue.concurrent_call - self.per_queue.get(queue.id, 0), batch)
            taken = 0
            while taken < room and self.bucket.take(now):
                taken += 1
            if not taken:
                return self.bucket.wait(now)
            kwargs = dict(now=now, day_start=self.window.day_start(now), next_day=self.window.next_day_open(now),
                          daily_cap=self.dialer_config.daily_cap)
            ledger = self.ledger.ledger

            def claim_some():
                claims = []
                for _ in range(taken):
                    claim = ledger.claim(queue, **kwargs)
                    if claim is None:
                        break
                    claims.append(claim)
                return claims
            claims = self.ledger.pool.apply(claim_some)
            now = self.clock()
            for _ in range(taken - len(claims)):
                self.bucket.give_back()
            if len(claims) < taken:
                self._idle_until[queue.id] = now + dialer_mod.IDLE_RECHECK
            for claim in claims:
                self._start(claim)
        return dialer_mod.IDLE_RECHECK
    dialer_mod.Dialer._dial_some = _dial_some


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', default='')
    args, rest = parser.parse_known_args()
    variants = {v for v in args.variants.split(',') if v}
    unknown = variants - {'fastparse', 'lazyparse', 'nohangup', 'switch', 'gclog', 'gcfreeze', 'nodelay', 'batchclaim'}
    if unknown:
        parser.error('unknown variants: %s' % ', '.join(sorted(unknown)))
    from daemon import main as daemon_main  # patches gevent, as the real entry point does
    from daemon import esl
    if 'fastparse' in variants:
        apply_fastparse(esl)
    if 'lazyparse' in variants:
        apply_lazyparse(esl)
    if 'nohangup' in variants:
        daemon_main.DEFAULT_EVENTS = tuple(e for e in esl.DEFAULT_EVENTS if e != 'CHANNEL_HANGUP')
    if 'nodelay' in variants:
        apply_nodelay(esl)
    if 'gclog' in variants:
        apply_gclog()
    if 'gcfreeze' in variants:
        apply_gcfreeze()
    if 'batchclaim' in variants:
        apply_batchclaim()
    if 'switch' in variants:
        sys.setswitchinterval(0.0005)
    return daemon_main.main([a for a in rest if a != '--'])


if __name__ == '__main__':
    sys.exit(main())
