"""Text normalisation, done once per issue before any matching.

Hostile text is the normal case, so the steps fold the tricks that hide a keyword from a
naive matcher: compatibility forms (NFKC: full-width letters, ligatures), case (casefold),
invisible characters (zero-width joiners, soft hyphens, BOM), look-alike letters from
Cyrillic and Greek, and punctuation or spacing between words. The result contains only
letters, digits and single spaces, so phrases match on word boundaries.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that render as nothing; attackers put them inside keywords.
_INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"),
    None,
)

# Look-alikes that NFKC leaves alone (it does not fold across scripts). Casefolded forms only.
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c",
        # Latin look-alikes
        "ı": "i", "ℓ": "l",
    }
)

_FOLD: dict[str, str] = {chr(k): (v if isinstance(v, str) else "")
                         for k, v in {**_INVISIBLE, **_HOMOGLYPHS}.items()}
_SPECIAL = re.compile("[" + re.escape("".join(_FOLD)) + "]")


def _fold_special(match: re.Match[str]) -> str:
    return _FOLD[match.group()]


# Python's re on a single character class is linear; nothing here can backtrack.
_NON_WORD = re.compile(r"[\W_]+")
# ASCII fast path: most issues are plain ASCII; bytes.translate with a 256-byte table and
# split/join are C loops (str.translate with a dict is several times slower).
_ASCII_TABLE = bytes(
    (c if chr(c).isalnum() else 32) if c < 128 else 32 for c in range(256)
)


def normalize(text: str, max_chars: int | None = None) -> str:
    """Return ``text`` folded for matching: letters, digits and single spaces only.

    ``max_chars`` cuts the raw input first, which bounds time and memory per issue.
    """
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    if text.isascii():
        return b" ".join(text.encode("ascii").lower().translate(_ASCII_TABLE).split()).decode()
    text = unicodedata.normalize("NFKC", text).casefold()
    # Only the few special characters are replaced (a C-level search finds them); translating
    # every character through a dict costs more than the rest of matching together.
    text = _SPECIAL.sub(_fold_special, text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def normalize_phrase(phrase: str) -> str:
    """Normalise a rule phrase exactly like issue text, so both sides agree."""
    return normalize(phrase)
