"""Warm transfer to sales reps: the roster and its routing rules, the consult call with a rep,
and joining them to the caller. The worker builds one ``TransferDesk`` per call; reps are
managed with ``python -m transfer reps ...``."""

from transfer.desk import DeskSettings, TransferDesk
from transfer.hold import hold_music_file
from transfer.offers import ConsoleOffers, Offer, OfferClosed
from transfer.roster import Rep, Roster, RosterError, WorkingHours
from transfer.routing import Routing, RoutingError, load_routing

__all__ = [
    "ConsoleOffers", "DeskSettings", "Offer", "OfferClosed", "Rep", "Roster", "RosterError",
    "Routing", "RoutingError", "TransferDesk", "WorkingHours", "hold_music_file", "load_routing",
]  # fmt: skip
