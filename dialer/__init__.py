"""The outbound dialer: a persistent queue of calls, dialed within each lead's calling hours,
under a global and a per-campaign cap and the trunk's pace, retried by outcome.

The worker's side (see dialer/README.md): read ``AttemptRef.from_metadata(job.metadata)``,
then ``reporter.progress(ref, "ringing" | "answered")`` and ``reporter.report(AttemptReport
(...))`` with a reporter from ``build_reporter``.
"""

from dialer.model import CallResult
from dialer.outcomes import AttemptRef, AttemptReport, OutcomeReporter
from dialer.service import build_reporter
from dialer.stores import open_store

__all__ = [
    "AttemptRef",
    "AttemptReport",
    "CallResult",
    "OutcomeReporter",
    "build_reporter",
    "open_store",
]
