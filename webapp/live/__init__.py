"""Live updates: `/ws/messages` pushes newly ingested messages matching the socket's filters.

Each web process runs one LISTEN thread (started by the first socket) on the channel the
ingestion writer NOTIFYs after every commit, and fans the notifications out to its sockets; so
any number of gunicorn workers each see every batch.
"""

from flask import Blueprint

bp = Blueprint("live", __name__)

from . import routes  # noqa: E402,F401
