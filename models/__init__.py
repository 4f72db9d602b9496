"""SQLAlchemy models, one module per domain. Importing this package registers them all."""

from .alerts import AlertRule, Delivery, Incident
from .auth import ApiToken, AuditLog, Group, User, UserSession, user_groups
from .base import Base
from .investigations import InvestigationCheck
from .messages import Message, QuarantinedReport, ReportReceipt
from .ops import Heartbeat
from .stats import ErrorGroup, MessageStat
from .stats_daily import ErrorGroupStatDaily, MessageStatDaily

__all__ = [
    "AlertRule",
    "Delivery",
    "Incident",
    "AuditLog",
    "Base",
    "ErrorGroup",
    "ErrorGroupStatDaily",
    "Group",
    "Heartbeat",
    "InvestigationCheck",
    "Message",
    "MessageStat",
    "MessageStatDaily",
    "QuarantinedReport",
    "ReportReceipt",
    "User",
    "UserSession",
    "ApiToken",
    "user_groups",
]
