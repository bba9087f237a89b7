"""The worker: claim a queued job, run its search with heartbeats, record how it ended."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import traceback
import uuid

from autotransfer.errors import UserInputError
from autotransfer.search import run_search
from autotransfer.storage import error_line, is_transient, ride_out
from service import jobs
from service.db import Job, JobState, get_sessionmaker
from service.settings import Settings
from service.submit import search_request

log = logging.getLogger(__name__)


class Worker:
    """Runs queued jobs one at a time until ``stop`` is set.

    A job it runs is heartbeated every ``settings.heartbeat_s``; when the store says the job
    is no longer ours (cancel requested, or re-queued after we stalled) the search is asked
    to stop between trials and at the current trial's next epoch.
    """

    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.sessions = get_sessionmaker(settings.database_url)

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        log.info("worker %s polling %s", self.name, self.settings.database_url)
        away = False  # the job store did not answer the last poll (a database restart)
        while not stop.is_set():
            try:
                ran = self.run_once()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if not away:
                    log.warning(
                        "worker %s: the job store is unavailable (%s); polling every %g s",
                        self.name,
                        error_line(exc),
                        self.settings.poll_s,
                    )
                away, ran = True, False
            else:
                if away:
                    log.warning("worker %s: the job store answers again", self.name)
                away = False
            if not ran:
                stop.wait(self.settings.poll_s)

    def run_once(self) -> bool:
        """Re-queue stale jobs, then claim and run one job; False when there was none."""
        with self.sessions() as session:
            jobs.requeue_stale(session, self.settings.stale_after_s)
            job = jobs.claim_job(session, self.name)
        if job is None:
            return False
        self.run_job(job)
        return True

    def run_job(self, job: Job) -> JobState | None:
        log.info("worker %s runs job %s (attempt %d)", self.name, job.id, job.attempts)
        stop = threading.Event()
        done = threading.Event()
        cancelled = threading.Event()

        def beat() -> None:
            failing = False  # one line when beats start failing, one when they work again
            while not done.wait(self.settings.heartbeat_s):
                try:
                    with self.sessions() as session:
                        if not jobs.heartbeat(session, job.id, self.name):
                            current = jobs.get_job(session, job.id)
                            if current is not None and current.cancel_requested:
                                cancelled.set()
                            stop.set()
                except Exception as exc:  # a database hiccup must not kill the search
                    if not failing:
                        log.warning(
                            "heartbeat of job %s failed (%s); retrying every %g s",
                            job.id,
                            error_line(exc),
                            self.settings.heartbeat_s,
                        )
                    failing = True
                    continue
                if failing:
                    log.warning("heartbeat of job %s recorded again", job.id)
                failing = False

        thread = threading.Thread(target=beat, name=f"job-heartbeat-{job.id[:8]}", daemon=True)
        thread.start()
        state, error = JobState.succeeded, None
        try:
            request = search_request(
                json.loads(job.request), study_name=job.study_name, settings=self.settings
            )
            run_search(request, should_stop=stop.is_set)
        except KeyboardInterrupt:
            done.set()
            with self.sessions() as session:
                jobs.release_job(session, job.id, self.name)
            log.warning("worker %s stopped; job %s is queued again", self.name, job.id)
            raise
        except UserInputError as exc:
            state, error = JobState.failed, str(exc)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            state = JobState.failed
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"
        finally:
            done.set()
            thread.join()
        if stop.is_set() and state is JobState.succeeded:
            if not cancelled.is_set():
                log.warning("job %s was taken from worker %s; leaving it", job.id, self.name)
                return None
            state = JobState.cancelled

        def finish() -> None:
            with self.sessions() as session:
                jobs.finish_job(session, job.id, self.name, state, error)

        # a search that outlived a database restart is recorded once it is back
        ride_out(finish, name="the job store")
        log.info("job %s ended %s", job.id, state)
        return state
