"""Privacy: forget a contact by phone number everywhere we keep it, and apply the retention
settings to transcripts and recordings.

Entry point: ``python -m privacy forget <phone> | sweep``; the lead API mounts
``DELETE /v1/contacts/{phone}`` (``privacy.api``) and the worker runs the sweep periodically.
"""

from privacy.forget import ContactEraser, ForgetReport
from privacy.retention import SweepReport, sweep, sweep_forever

__all__ = ["ContactEraser", "ForgetReport", "SweepReport", "sweep", "sweep_forever"]
