"""How raw text spells a boolean: one list for Silver's rules and for the stream's raw-CSV fallback."""

from __future__ import annotations

TRUE_TOKENS: tuple[str, ...] = ("true", "t", "yes", "y", "1")
FALSE_TOKENS: tuple[str, ...] = ("false", "f", "no", "n", "0")
