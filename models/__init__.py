"""SQLAlchemy models, one module per domain. Importing this package registers them all."""

from .auth import AuditLog, Group, User, user_groups
from .base import Base
from .investigations import InvestigationCheck
from .messages import Message, QuarantinedReport, ReportReceipt
from .ops import Heartbeat
from .stats import ErrorGroup, MessageStat

__all__ = [
    "AuditLog",
    "Base",
    "ErrorGroup",
    "Group",
    "Heartbeat",
    "InvestigationCheck",
    "Message",
    "MessageStat",
    "QuarantinedReport",
    "ReportReceipt",
    "User",
    "user_groups",
]
