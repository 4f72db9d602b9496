"""Message pages. (The full list with filters, detail and trace arrive with the UI issue.)"""

from __future__ import annotations

from flask import render_template
from sqlalchemy import select

from models import Message

from ..extensions import db
from . import bp


@bp.get("/")
def index():
    rows = db.session.execute(
        select(
            Message.id,
            Message.received_at,
            Message.message_type,
            Message.errored,
            Message.processing_start,
            Message.processing_ms,
            Message.routing_key,
            Message.hash,
        )
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(50)
    ).all()
    return render_template("messages/list.html", rows=rows)
