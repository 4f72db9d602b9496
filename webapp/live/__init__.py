"""Live updates: `/ws/messages` pushes newly ingested messages matching the socket's filters.

Each process that serves sockets runs one LISTEN thread (hub.py) on the channel the ingestion
writer NOTIFYs after every commit, and one fan-out thread (fanout.py) that renders each push once
per distinct (filters, scope) for all its sockets; so any number of processes each see every
batch. The live process (`python -m webapp.processes live`) runs gunicorn's gevent worker: its
threads are greenlets, and psycopg2 is told to wait cooperatively (green.py).
"""

from flask import Blueprint

from . import green

bp = Blueprint("live", __name__)
green.install_if_cooperative()

from . import routes  # noqa: E402,F401
