"""The worker pool: threads that claim jobs, one heartbeat thread that keeps their leases alive, and a
graceful stop (SIGTERM): stop claiming, let running jobs finish within a grace period, release the rest."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bot import metrics, queue, store
from bot.db import is_postgresql, reading
from bot.jobs import JobRunner
from bot.queue import Lease
from bot.wakeup import Listener

log = logging.getLogger(__name__)


class WorkerPool:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        runner: JobRunner,
        threads: int,
        lease_seconds: float,
        poll_seconds: float = 0.1,
        notified_poll_seconds: float = 1.0,
        stopping: threading.Event | None = None,
        gemini_wait: float = 180.0,
        per_user: int = queue.DEFAULT_USER_CONCURRENCY,
    ) -> None:
        """``stopping``: set on shutdown (shared with the runner and the Gemini client, so retry waits end
        too). ``gemini_wait``: how long, past the grace period, a job inside its Gemini call may still
        take to store its answer (the Gemini timeout): a deploy never buys the same image twice.
        ``per_user``: running jobs a person may have (``BANANA_USER_CONCURRENCY``). ``poll_seconds``: how
        often an idle pool looks for jobs nobody told it of; ``notified_poll_seconds``, the same while
        PostgreSQL's notifications do tell it (``listen``) or its ``serve`` does (``told_by_serve``)."""
        self._sessions = sessions
        runner.on_unblocked = self.wake  # the next job of a conversation may run now
        runner.hand_off = self._hand_off  # a delivery goes on beside the pool's threads
        self._look_first = not is_postgresql(sessions)
        self._runner = runner
        self._threads = threads
        self._lease_seconds = lease_seconds
        self._poll_seconds = poll_seconds
        self._notified_poll_seconds = notified_poll_seconds
        self._stopping = stopping or threading.Event()
        self._gemini_wait = gemini_wait
        self._per_user = per_user
        self._halted = threading.Event()
        self._wake = threading.Condition()
        self._pending_wakes = 0
        self._idle_count = 0
        self._looker: int | None = None  # the idle thread that polls (``_idle``)
        self._running: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        # Deliveries (upload, share, card) of answered jobs, each in a thread of its own, by their job ids:
        # as many at once as there are workers; past that, a worker delivers its own job.
        self._deliveries: dict[threading.Thread, int] = {}
        self._failing: set[str] = set()  # worker threads whose last claim failed
        self._listener: Listener | None = None
        self._listening = False
        self.owner_prefix = owner_prefix(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:6])

    def listen(self, engine: Engine) -> None:
        """PostgreSQL: wake for jobs other processes queue the moment they commit (``bot.wakeup``), and
        poll only every ``notified_poll_seconds`` while that works (for retries whose delay came due)."""
        self._listener = Listener(engine, wake=self.wake, up=self._listen_up, stopping=self._stopping)

    def _listen_up(self, up: bool) -> None:
        self._listening = up

    def told_by_serve(self) -> None:
        """A ``serve``'s worker process on SQLite: the jobs its ``serve`` queues wake this pool
        (``bot.worker_process``), so it polls only every ``notified_poll_seconds``, for retries whose delay
        came due and jobs of other processes."""
        self._listening = True

    def start(self) -> None:
        if self._threads and self._listener is not None:
            self._listener.start()
        for i in range(self._threads):
            thread = threading.Thread(
                target=self._loop, args=(f"{self.owner_prefix}:{i}",), name=f"banana-worker-{i}", daemon=True
            )
            thread.start()
            self._workers.append(thread)
        if self._threads:
            threading.Thread(target=self._heartbeat, name="banana-heartbeat", daemon=True).start()
        log.info("%d workers started (lease %.0fs)", self._threads, self._lease_seconds)

    def claiming(self) -> bool:
        """False while any worker thread's last attempt to claim failed (the database refuses the claim,
        whatever the reason): ``/healthz`` reports that, rather than a healthy-looking idle process."""
        with self._lock:
            return not self._failing

    def wake(self) -> None:
        """A job was enqueued in this process: claim it now instead of at the next poll."""
        with self._wake:
            self._pending_wakes += 1
            self._wake.notify()

    def idle(self) -> int:
        """How many worker threads are waiting for work."""
        with self._wake:
            return self._idle_count

    def _idle(self) -> None:
        """Wait to be woken, or for the next poll. One idle thread (the looker) polls the database every
        ``poll_seconds`` (``notified_poll_seconds`` while notifications wake the pool); the others' waits end
        without a query, and one of them looks next if the looker went off with a job. Fifty threads that
        each polled made a hundred queries a second at rest."""
        me = threading.get_ident()
        with self._wake:
            self._idle_count += 1
            try:
                # The stop flag is read under the lock that stop() notifies under: a stop can't slip in
                # between the check and the wait and leave this thread asleep for a whole poll.
                while not (self._pending_wakes or self._stopping.is_set()):
                    if self._looker is None:
                        self._looker = me
                    poll = self._notified_poll_seconds if self._listening else self._poll_seconds
                    if not self._wake.wait(poll) and self._looker == me:
                        return  # time to look; this thread stays the looker unless it finds a job
                self._pending_wakes = max(0, self._pending_wakes - 1)
            finally:
                self._idle_count -= 1

    def _took_job(self) -> None:
        """This thread has a job. If it was the looker, the next idle thread to wake looks instead; and
        there may be more jobs, so one idle thread looks at once (the cascade ends at none)."""
        with self._wake:
            if self._looker == threading.get_ident():
                self._looker = None
            self._pending_wakes += 1
            self._wake.notify()

    def _loop(self, owner: str) -> None:
        outage = False
        while not self._stopping.is_set():
            try:
                lease = self._claim(owner)
            except Exception as err:
                # Nothing may end this thread but a stop: a worker that died quietly would leave the
                # process healthy-looking and idle. The database going away is the usual cause.
                if isinstance(err, DBAPIError):
                    if not outage:
                        log.warning("cannot claim jobs: database unavailable (%s); retrying", _short(err))
                else:
                    log.exception("cannot claim jobs; retrying")
                outage = True
                with self._lock:
                    self._failing.add(owner)
                self._stopping.wait(OUTAGE_RETRY_SECONDS)
                continue
            if outage:
                log.info("claiming jobs again: the database is back")
                outage = False
                with self._lock:
                    self._failing.discard(owner)
            if lease is None:
                self._idle()
                continue
            self._took_job()
            metrics.CLAIMS.inc()
            with self._lock:
                self._running[lease.job_id] = lease
            handed_off = False
            try:
                log.info("job %s claimed (attempt %d)", lease.job_id, lease.attempt)
                handed_off = self._runner.run(lease)
            except Exception:
                log.exception("job %s: unexpected error in the worker loop", lease.job_id)
            finally:
                if not handed_off:
                    with self._lock:
                        self._running.pop(lease.job_id, None)

    def _hand_off(self, lease: Lease, rest: Callable[[], None]) -> bool:
        """Deliver an answered job in a thread of its own, its lease still kept alive by the heartbeat, so
        that the worker can take the next job to Gemini now: a delivery waits on Slack (the upload, the
        share to show, the result before it) for a second or more. False when as many deliveries as there
        are workers are under way already."""
        thread = threading.Thread(
            target=self._deliver, args=(lease, rest), name=f"banana-delivery-{lease.job_id}", daemon=True
        )
        with self._lock:
            if len(self._deliveries) >= self._threads:
                return False
            self._deliveries[thread] = lease.job_id
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (the process is at its limit): the worker delivers
            with self._lock:
                self._deliveries.pop(thread, None)
            return False
        return True

    def _deliver(self, lease: Lease, rest: Callable[[], None]) -> None:
        try:
            rest()
        except Exception:
            log.exception("job %s: unexpected error in its delivery", lease.job_id)
        finally:
            with self._lock:
                self._running.pop(lease.job_id, None)
                self._deliveries.pop(threading.current_thread(), None)

    def _claim(self, owner: str) -> Lease | None:
        """On SQLite a claim takes the write lock, so an idle worker first looks with a read; PostgreSQL's
        claim (``SKIP LOCKED``) is itself that cheap, and a look first would only add a round trip."""
        if self._look_first:
            with reading(self._sessions) as session:
                if not queue.anything_to_claim(session, per_user=self._per_user):
                    return None
        with self._sessions() as session:
            return queue.claim(
                session, owner=owner, lease_seconds=self._lease_seconds, per_user=self._per_user
            )

    def _heartbeat(self) -> None:
        """Renew the leases of running jobs; now and then, forget old dedupe keys (``PRUNE_EVERY``)."""
        interval = max(0.5, self._lease_seconds / 3)
        pruned_at = time.monotonic() - PRUNE_EVERY  # the first round prunes
        while not self._halted.wait(interval):
            if time.monotonic() - pruned_at >= PRUNE_EVERY:
                pruned_at = time.monotonic()
                self._prune()
            with self._lock:
                leases = list(self._running.values())
            for lease in leases:
                try:
                    with self._sessions() as session:
                        renewed = queue.heartbeat(session, lease, lease_seconds=self._lease_seconds)
                        if not renewed and queue.taken_over(session, lease):
                            log.warning("job %s: lease taken over by another worker", lease.job_id)
                except Exception as err:  # the heartbeat must outlive any error, or every lease lapses
                    log.warning("job %s: heartbeat failed (%s)", lease.job_id, _short(err))

    def _prune(self) -> None:
        try:
            with self._sessions() as session:
                gone = store.prune_deliveries(session)
                session.commit()
            if gone:
                log.info("forgot %d dedupe keys older than a day", gone)
        except Exception as err:  # it waits for the next round
            log.warning("could not prune old dedupe keys (%s)", _short(err))

    def stop(self, *, grace_seconds: float = 25.0) -> None:
        """Stop claiming; wait up to ``grace_seconds`` for running jobs, then release what is left."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + grace_seconds
        for thread in self._workers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:  # the workers have stopped handing off (or the grace period is over)
            deliveries = dict(self._deliveries)
        if deliveries:
            log.info("waiting for the deliveries under way: %s", sorted(deliveries.values()))
        for thread in deliveries:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        # A job inside its Gemini call keeps its lease (the heartbeat goes on) until the answer is stored:
        # it may already be paid for. Jobs not yet at Gemini went back to the queue at their next step.
        gemini_deadline = time.monotonic() + self._gemini_wait
        if self._runner.at_gemini():
            log.info("waiting for the jobs inside their Gemini call: %s", sorted(self._runner.at_gemini()))
        while self._runner.at_gemini() and time.monotonic() < gemini_deadline:
            time.sleep(0.05)
        self._halted.set()
        with self._lock:
            leftover = list(self._running.values())
        for lease in leftover:
            try:
                with self._sessions() as session:
                    if queue.release(session, lease):
                        log.warning("job %s released for another worker", lease.job_id)
            except Exception as err:  # the database is away: the lease lapses and another worker runs it
                log.warning(
                    "job %s: could not release it (%s); it runs again after its lease",
                    lease.job_id,
                    _short(err),
                )
        log.info("workers stopped")


OUTAGE_RETRY_SECONDS = 2.0  # between claims while the database refuses them
PRUNE_EVERY = 3600.0  # seconds between prunings of old dedupe keys, per worker process
OWNER_MAX = 64  # job.lease_owner
_INDEX_ROOM = 4  # ":NNN", a worker thread's number


def owner_prefix(hostname: str, pid: int, tag: str) -> str:
    """``host:pid:tag``, short enough that every worker id (``prefix:N``) fits ``job.lease_owner``
    whatever the hostname (Kubernetes pod names reach 63 characters). A hostname that has to be cut keeps
    its start and gains a hash of the whole, so two long names that share a start stay apart."""
    rest = f":{pid}:{tag}"
    room = OWNER_MAX - _INDEX_ROOM - len(rest)
    if len(hostname) > room:
        digest = hashlib.sha256(hostname.encode()).hexdigest()[:8]
        hostname = f"{hostname[: room - len(digest) - 1]}~{digest}"
    return f"{hostname}{rest}"


def _short(err: BaseException) -> str:
    """One line about a database error, without SQL, parameters or a traceback."""
    orig = getattr(err, "orig", None) or err
    first = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {first[0][:200]}" if first else type(orig).__name__
