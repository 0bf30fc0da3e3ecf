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
_INLINE_CODE = re.compile(r"(`[^`\n]*`)")  # captured: split() returns text and code in turn
_RUN = re.compile(r"`+|~+")


def prose_only(text: str) -> str:
    """Drop fenced code blocks, block quotes, inline code and HTML comments."""
    return split_prose(text)[0]


def _line(text: str, at: int) -> tuple[int, int]:
    """Start and end (the newline or the end of text) of the line holding ``at``."""
    end = text.find("\n", at)
    return text.rfind("\n", 0, at) + 1, len(text) if end < 0 else end


def _block_lines(text: str) -> list[tuple[int, int, str | None]]:
    """Lines that open or close a fence (with the fence's run of marks) or are block quotes
    (``None``), as (start, end, run), in text order.

    Found with ``str.find`` rather than line by line; after a hit the search resumes on the
    next line, so each line is looked at once per mark and time stays linear.
    """
    found: list[tuple[int, int, str | None]] = []
    for mark in ("```", "~~~"):
        at = text.find(mark)
        while at >= 0:
            start, end = _line(text, at)
            indent = text[start:at]
            # CommonMark: a fence is indented by at most three spaces.
            if len(indent) <= 3 and not indent.strip(" "):
                run = _RUN.match(text, at)
                assert run is not None
                found.append((start, end, run.group()))
            at = text.find(mark, end)
    at = text.find(">")
    while at >= 0:
        start, end = _line(text, at)
        if start == at or text[start:at].isspace():
            found.append((start, end, None))
        at = text.find(">", end)
    found.sort()
    return found


def split_prose(text: str) -> tuple[str, str]:
    """``(prose, the rest)``: the author's prose, and the code, quotes and HTML comments.

    Every character of ``text`` ends up in exactly one of the two (apart from line breaks), so
    a matcher can normalise each part once and still see the whole issue. Lines end at
    ``\n``, ``\r\n`` or ``\r``, as in Markdown.
    """
    if not any(mark in text for mark in ("`", "~~~", ">", "<!--")):
        return text, ""
    removed: list[str] = []
    if "<!--" in text:
        removed = [m.group() for m in _HTML_COMMENT.finditer(text)]
        text = _HTML_COMMENT.sub(" ", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept: list[str] = []
    fence: str | None = None
    opened = keep_from = 0
    for start, end, run in _block_lines(text):
        if fence is not None:
            # Inside a fence only a closing fence (same mark, at least as long) matters.
            if run and run[0] == fence[0] and len(run) >= len(fence):
                removed.append(text[opened:end])
                fence = None
                keep_from = end
            continue
        kept.append(text[keep_from:start])
        if run:
            fence = run
            opened = start
        else:
            removed.append(text[start:end])
            keep_from = end
    if fence is not None:
        removed.append(text[opened:])
    else:
        kept.append(text[keep_from:])
    prose = "".join(kept)
    if "`" in prose:
        parts = _INLINE_CODE.split(prose)
        if len(parts) > 1:
            removed.extend(parts[1::2])
            prose = " ".join(parts[0::2])
    return prose, "\n".join(removed)
