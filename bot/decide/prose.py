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
_MARKS = frozenset(">`~")


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
    removed: list[str] = []
    if "<!--" in text:
        removed = [m.group() for m in _HTML_COMMENT.finditer(text)]
        text = _HTML_COMMENT.sub(" ", text)
    lines = text.splitlines()
    # Only lines that start with a fence or quote mark change anything; the rest are sliced.
    marked = [i for i, line in enumerate(lines) if line.lstrip()[:1] in _MARKS]
    kept: list[str] = []
    fence: str | None = None
    start = keep_from = 0
    for i in marked:
        line = lines[i]
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                removed.extend(lines[start : i + 1])
                fence = None
                keep_from = i + 1
            continue
        if m:
            kept.extend(lines[keep_from:i])
            fence = m.group(1)
            start = i
        elif line.lstrip().startswith(">"):
            kept.extend(lines[keep_from:i])
            removed.append(line)
            keep_from = i + 1
    if fence is not None:
        removed.extend(lines[start:])
    else:
        kept.extend(lines[keep_from:])
    prose = "\n".join(kept)
    if "`" in prose:
        code = _INLINE_CODE.findall(prose)
        if code:
            removed.extend(code)
            prose = _INLINE_CODE.sub(" ", prose)
    return prose, "\n".join(removed)
