"""What the on-call sensors and the ``slo_status`` asset share: the SLO file, the incident store, links.

Built once from the settings when the code location loads, so a malformed SLO file or a notifier without
its secret stops the code location from loading, with the key named (Settings and the SLO loader check).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from oncall.alerts import Links, source_name
from oncall.definitions import SloBook, load_slo_book
from oncall.dispatch import Dispatcher
from oncall.incidents import IncidentBook
from oncall.monitor import incident_book
from oncall.notifiers import build_notifiers

GROUP = "oncall"


@dataclass(frozen=True)
class Oncall:
    settings: Settings
    slos: SloBook
    links: Links

    @classmethod
    def from_settings(cls, settings: Settings) -> Oncall:
        return cls(settings, load_slo_book(settings), Links.from_settings(settings))

    def book(self) -> IncidentBook:
        """A connection to the shared incident store (close it after the tick)."""
        return incident_book(self.settings, self.settings.notifier_names)

    def dispatcher(self, book: IncidentBook) -> Dispatcher:
        """Delivery from this process: only the watchdog uses it, when the monitor cannot deliver."""
        return Dispatcher(book, build_notifiers(self.settings), source_name(self.settings))
