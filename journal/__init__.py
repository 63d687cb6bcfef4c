"""The call journal: each call's transcript, facts and tool effects written as the call goes,
so a call whose worker died is still recorded (marked interrupted), once.

`CallJournal` is opened by the call's job process and follows its session; `recover` runs in
the worker's main process, at start and then every few seconds, and delivers the calls whose
journal no living process holds.
"""

from journal.recovery import RECOVERY_INTERVAL_S, recover, recover_forever
from journal.writer import CallJournal

__all__ = ["RECOVERY_INTERVAL_S", "CallJournal", "recover", "recover_forever"]
