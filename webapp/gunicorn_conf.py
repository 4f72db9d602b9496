"""gunicorn hooks of the `web` process (`-c python:webapp.gunicorn_conf`, webapp/processes.py).

/metrics' request latency lives in prometheus-client's multiprocess directory
(`PROMETHEUS_MULTIPROC_DIR`, set and emptied by `python -m webapp.processes web` before gunicorn
starts): when a worker process exits, its live gauges are dropped; its counts stay, so the totals
never go backwards when gunicorn replaces a worker. When gunicorn stops, the files go too.
"""

from __future__ import annotations

import os


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    from pathlib import Path

    for path in Path(directory).glob("*.db"):
        path.unlink(missing_ok=True)
    try:
        Path(directory).rmdir()  # only when empty (made again at the next start)
    except OSError:
        pass
