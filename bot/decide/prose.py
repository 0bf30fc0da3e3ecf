"""The author's own prose: issue text without code, quotes and HTML comments.

Gates judge how the *reporter* frames an issue ("implement…", "how to…", "not a security
issue"). The same words inside a code block (`pull_request_target`), a quoted chatbot prompt or
an issue template's HTML comment ("describe how to reproduce") say nothing about that, so gates
read only what this function keeps. Signals still read everything: a PoC in a code block is
evidence.
"""

from __future__ import annotations

import re

# Linear: no nested quantifiers; each pattern consumes what it matches.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def prose_only(text: str) -> str:
    """Drop fenced code blocks, block quotes, inline code and HTML comments."""
    return split_prose(text)[0]


def split_prose(text: str) -> tuple[str, str]:
    """``(prose, the rest)``: the author's prose, and the code, quotes and HTML comments.

    Every character of ``text`` ends up in exactly one of the two (apart from line breaks), so
    a matcher can normalise each part once and still see the whole issue.
    """
    if not any(mark in text for mark in ("`", "~~~", ">", "<!--")):
        return text, ""
    removed: list[str] = [m.group() for m in _HTML_COMMENT.finditer(text)]
    if removed:
        text = _HTML_COMMENT.sub(" ", text)
    kept: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            removed.append(line)
            continue
        if m:
            fence = m.group(1)
            removed.append(line)
            continue
        if line.lstrip().startswith(">"):
            removed.append(line)
            continue
        kept.append(line)
    prose = "\n".join(kept)
    removed.extend(_INLINE_CODE.findall(prose))
    return _INLINE_CODE.sub(" ", prose), "\n".join(removed)
