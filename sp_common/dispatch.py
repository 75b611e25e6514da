"""The one dispatcher of user callbacks: the engine queues them, a runtime runs them outside its lock.

feed() handles the protocol's own messages itself; a message for a user
callback becomes a job, (callback entry, message, response sid or None, seq,
session epoch), in engine.jobs when the runtime set that list. The runtime
then calls run(engine, lock) once its lock is free: each callback runs
outside the lock, so a slow one stalls no other thread's calls, and its
answer goes out through the engine under the lock (Engine.finish). Without a
runtime's list (engine.jobs is None) the engine runs a job at once.
"""
import sys


# What a callback raises that is its error, answered STATUS_CALLBACK_ERROR. On the host SystemExit too (argparse
# raises it on arguments it cannot parse): it must not end an I/O thread or an event loop. On a board it goes on up,
# as KeyboardInterrupt (Ctrl-C) does everywhere: it is how sys.exit() and machine.soft_reset() end the program.
ERRORS = Exception if sys.implementation.name == 'micropython' else (Exception, SystemExit)


def call(job):
    """(what the job's callback returned, None), or (None, what it raised: ERRORS)."""
    entry = job[0]
    try:
        return entry[0](job[1], *entry[1], **entry[2]), None
    except ERRORS as err:
        return None, err


def run(engine, lock, finish=None, go_on=None):
    """Runs the jobs engine.feed() queued, each callback outside lock and each outcome under it.

    Jobs are taken under the lock too: on a host another thread (the timer's) runs engine steps meanwhile. The
    runtime calls run() from one thread at a time, so that they run in the order they came: the host's from the
    thread whose step queued them, or (a caller's read in its turn, sp_cpython.turns) from the I/O thread.
    finish(job, result, error) takes each outcome: engine.finish, or the asyncio driver's, which awaits a
    coroutine first. go_on(), asked between jobs: False drops the jobs left (a read may queue hundreds, and the
    protocol may close, or its peer lose its place, meanwhile).
    """
    finish = finish or engine.finish
    jobs = engine.jobs
    while True:
        with lock:
            if not jobs:
                return
            job = jobs.pop(0)
        result, error = call(job)
        with lock:
            finish(job, result, error)
        if jobs and go_on is not None and not go_on():
            with lock:
                del jobs[:]
            return
