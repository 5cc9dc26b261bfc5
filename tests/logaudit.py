"""An independent auditor of a published notar log (moved to loadtest.reliability.checker)."""

from loadtest.reliability.checker import AuditedLog, audit

__all__ = ["AuditedLog", "audit"]
