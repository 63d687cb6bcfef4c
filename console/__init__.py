"""The rep console: a web page served by the lead API at /console/, where sales reps sign in
(an invite link sets their password), say whether they are available, see an incoming
transfer's brief with Accept and Decline, talk to the caller through LiveKit in the browser,
and write their notes afterwards. ``mount_console`` puts it on the lead API's app; reps are
invited with ``python -m console invite EMAIL``. The front end is in ``console/web/``."""

from console.routes import ConsoleDeps, mount_console
from console.service import ConsoleSettings, console_deps, load_console_settings

__all__ = ["ConsoleDeps", "ConsoleSettings", "console_deps", "load_console_settings",
           "mount_console"]  # fmt: skip
