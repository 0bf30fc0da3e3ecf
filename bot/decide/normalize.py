"""Text normalisation, done once per issue before any matching.

Hostile text is the normal case, so the steps fold the tricks that hide a keyword from a
naive matcher: compatibility forms (NFKC: full-width letters, ligatures), case (casefold),
invisible characters (zero-width joiners, soft hyphens, BOM), look-alike letters from
Cyrillic and Greek, and punctuation or spacing between words. The result contains only
letters, digits and single spaces, so phrases match on word boundaries.
"""

from __future__ import annotations

import functools
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
_ASCII_BYTES = bytes(range(128))
# After folding, only ASCII punctuation is left to blank out: bytes.translate with a 256-byte
# table and split/join are C loops (str.translate with a dict is several times slower).
_ASCII_TABLE = bytes((c if chr(c).isalnum() else 32) if c < 128 else 32 for c in range(256))
_UTF8_TABLE = bytes((c if chr(c).isalnum() else 32) if c < 128 else c for c in range(256))
# The same with ASCII upper case lowered in the same pass (bytes.lower touches ASCII only).
_ASCII_LOWER = bytes(_ASCII_TABLE[ord(chr(c).lower()) if c < 128 else c] for c in range(256))
_UTF8_LOWER = bytes(_UTF8_TABLE[ord(chr(c).lower()) if c < 128 else c] for c in range(256))
# Above this many distinct non-ASCII characters one translate pass beats a replace per character.
_REPLACE_LIMIT = 32


def _single_spaced(raw: bytes) -> bytes:
    """Collapse runs of spaces (the only whitespace left) and trim the ends."""
    return b" ".join(raw.split())


try:  # the compiled one-pass versions, when the install could build them (setup.py)
    from bot.decide._speedups import collapse as _collapse
    from bot.decide._speedups import collapse_cjk as _collapse_cjk
except ImportError:  # pragma: no cover - exercised where no C compiler is found
    _collapse = None
    _collapse_cjk = None


def _fold_ascii(raw: bytes, table: bytes) -> bytes:
    """Translate with ``table`` and collapse to single spaces."""
    if _collapse is not None:
        folded: bytes = _collapse(raw, table)
        return folded
    return _single_spaced(raw.translate(table))


# Kana and CJK ideographs (U+3040..U+9FFF) as UTF-8: scripts written without spaces between
# words. Each such character becomes its own token, so a phrase matches inside a run of text
# without spaces ("训练数据投毒" holds "投毒") while matches stay on token boundaries. Done on
# the bytes with one C-level substitution (a per-character str.translate is several times
# slower on CJK text).
_CJK = re.compile(rb"(?:\xe3[\x81-\xbf]|[\xe4-\xe9][\x80-\xbf])[\x80-\xbf]")


def _fold_one(c: str) -> str:
    folded = _FOLD.get(c)
    if folded is not None:
        return folded
    if not c.isalnum():
        return " "
    if 0xC0 <= ord(c) <= 0x24F:
        # Latin letters lose their accents ("entraînement" = "entrainement"): reporters drop
        # them as often as not, and phrases are folded the same way.
        return "".join(x for x in unicodedata.normalize("NFD", c)
                       if not unicodedata.combining(x)) or c
    return c


@functools.lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """One character after NFKC: casefolded, then look-alikes folded, invisibles dropped,
    Latin accents dropped and other non-letters (’ — “ … emoji)
    made spaces. Cached: the same few characters (’ — é) come back in every text."""
    return "".join(_fold_one(c) for c in ch.casefold())


def normalize_bytes(text: str, max_chars: int | None = None) -> bytes:
    """Return ``text`` folded for matching, as UTF-8: letters, digits and single spaces only.

    ``max_chars`` cuts the raw input first, which bounds time and memory per issue.
    """
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        raw = text.encode("utf-8", "surrogatepass")
        # Case folding is a per-character mapping, so each distinct non-ASCII character is
        # folded once (a text has few: ’ — é) and ASCII is lowered as bytes below; str.casefold
        # over a whole non-ASCII text is ten times slower. Deleting the ASCII bytes leaves the
        # non-ASCII characters (C loops only). UTF-8 is self-synchronising, so replacing a
        # character's bytes never touches another character.
        distinct = set(raw.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass"))
        folds = {ch: f for ch in distinct if (f := _fold_char(ch)) != ch}
        if len(folds) > _REPLACE_LIMIT:
            raw = text.translate({ord(ch): f for ch, f in folds.items()}).encode(
                "utf-8", "surrogatepass")
        else:
            for ch, f in folds.items():
                raw = raw.replace(ch.encode("utf-8", "surrogatepass"), f.encode())
        # max() is one C call; most texts' largest character is a quote or a dash.
        if max(distinct, default="") >= "\u3040" and any(
                "\u3040" <= ch <= "\u9fff" for ch in distinct):
            if _collapse is not None and _collapse_cjk is not None:
                spaced: bytes = _collapse_cjk(raw, _UTF8_LOWER)
                return spaced
            raw = _CJK.sub(rb" \g<0> ", raw)
        return _fold_ascii(raw, _UTF8_LOWER)
    return _fold_ascii(text.encode("ascii"), _ASCII_LOWER)


def normalize(text: str, max_chars: int | None = None) -> str:
    """Return ``text`` folded for matching: letters, digits and single spaces only."""
    return normalize_bytes(text, max_chars).decode("utf-8", "surrogatepass")


def normalize_phrase(phrase: str) -> str:
    """Normalise a rule phrase exactly like issue text, so both sides agree."""
    return normalize(phrase)
