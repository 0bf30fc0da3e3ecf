"""Is an issue written in English? (pure; a cheap guess, not a language identifier)

The semantic model learned mostly from English examples: on other languages its
probabilities are flatter, so the combination may use another flag threshold there
(``SemanticPolicy.flag_at_other``). The guess only needs to separate English from the seven
other languages the rules know (es, pt, fr, de, zh, ja, ru): text mostly in another script is
not English; Latin-script text is English when English function words outnumber those of
Spanish, Portuguese, French and German.
"""

from __future__ import annotations

import re


def _words(spaced: str) -> frozenset[str]:
    """The words of a space-separated list."""
    return frozenset(spaced.split())


# Function words that are not also common English words or variable names ("a", "in", "no",
# "do", "y", "hat" are left out): counting them needs no word list per language and no model.
_ENGLISH = _words(
    "the and of to is it that for with this are be was when from not by we our can or at as "
    "if has have been will would should does did what which there their they you your after "
    "before into but than then only also just")
_OTHER = _words(
    # es
    "el la los las que es por para con una del se lo como pero mas cuando este esta "
    "hay sin sobre entre tambien nuestro nuestra puede "
    # pt
    "os da dos das um uma em nao ao aos pelo pela isso esse essa quando nosso nossa "
    "pode sao tem foi estao "
    # fr
    "le les des du et est pour dans qui pas sur avec ce il nous ne une sont mais ou cette "
    "ces aux par leur peut tout "
    # de
    "der das und ist nicht mit ein eine zu den dem von fur auf wir sich auch bei im "
    "oder wenn wird werden kann nach uber sind")
_WORD = re.compile(r"[^\W\d_]+")
_UNACCENT = str.maketrans("áàâãäéèêëíìîïóòôõöúùûüçñß", "aaaaaeeeeiiiiooooouuuucns")


def _fold(word: str) -> str:
    """Lower case without the accents the word lists leave out ("não" → "nao")."""
    return word.lower().translate(_UNACCENT)


def is_english(text: str) -> bool:
    """Whether ``text`` reads as English (True for text with no words to judge by)."""
    words = _WORD.findall(text)
    if not words:
        return True
    letters = sum(len(w) for w in words)
    # Beyond Latin Extended-B: CJK, kana, Cyrillic and other scripts. A fifth is enough: code
    # and error messages in such issues are English.
    other_script = sum(1 for w in words for ch in w if ord(ch) > 0x24F)
    if other_script * 5 > letters:
        return False
    english = other = 0
    for word in words:
        folded = _fold(word)
        english += folded in _ENGLISH
        other += folded in _OTHER
    return english >= other


def _cjk(ch: str) -> bool:
    """Kana and CJK ideographs: scripts written without spaces between words."""
    return "\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff"


def word_count(text: str) -> int:
    """Words in ``text``; in Chinese and Japanese, which have no spaces, two characters
    count as a word."""
    words = _WORD.findall(text)
    spaced = sum(1 for w in words if not _cjk(w[0]))
    return spaced + sum(1 for ch in text if _cjk(ch)) // 2
