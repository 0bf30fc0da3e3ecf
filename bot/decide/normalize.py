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
# Runs of non-ASCII bytes in the UTF-8 form (a byte-level search is fast); only those runs are
# walked character by character: look-alikes folded, invisibles dropped, other non-letters
# (’ — “ … emoji) made spaces.
_NON_ASCII_BYTES = re.compile(rb"[\x80-\xff]+")
_UTF8_TABLE = bytes((c if chr(c).isalnum() else 32) if c < 128 else c for c in range(256))


def _fold_run(match: re.Match[bytes]) -> bytes:
    run = match.group().decode("utf-8", "surrogatepass")
    folded = "".join(_FOLD.get(ch, ch if ch.isalnum() else " ") for ch in run)
    return folded.encode("utf-8", "surrogatepass")


# Every regex here is a single character class: linear, nothing can backtrack.
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
    raw = _NON_ASCII_BYTES.sub(_fold_run, text.encode("utf-8", "surrogatepass"))
    return b" ".join(raw.translate(_UTF8_TABLE).split()).decode("utf-8", "surrogatepass")


def normalize_phrase(phrase: str) -> str:
    """Normalise a rule phrase exactly like issue text, so both sides agree."""
    return normalize(phrase)
