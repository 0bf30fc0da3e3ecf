# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
"""Compiled inner loop of ``bot/decide/match.py``: optional, same results.

``Matcher`` uses this when it was built (``pip install`` compiles it where a C compiler is
found) and the pure-Python methods otherwise; ``tests/test_match_reference.py`` checks both
against a slow reference. It does the per-match work of one text: the layer split with
leftmost-longest per layer, the confuser ranges, and the proximity sweep. Every array access
is bounds-checked; scratch memory is per call, so concurrent threads cannot share it.
"""

from libc.stdlib cimport calloc, free, malloc, qsort


cdef struct Hit:
    long idx
    long start
    long end
    long pos


cdef int _by_start_longest(const void* a, const void* b) noexcept nogil:
    cdef const Hit* x = <const Hit*>a
    cdef const Hit* y = <const Hit*>b
    if x.start != y.start:
        return -1 if x.start < y.start else 1
    if x.end != y.end:
        return -1 if x.end > y.end else 1
    return -1 if x.idx < y.idx else (1 if x.idx > y.idx else 0)


cdef int _by_start(const void* a, const void* b) noexcept nogil:
    cdef const Hit* x = <const Hit*>a
    cdef const Hit* y = <const Hit*>b
    if x.start != y.start:
        return -1 if x.start < y.start else 1
    return -1 if x.idx < y.idx else (1 if x.idx > y.idx else 0)


cdef long _longest(Hit* hits, long n) noexcept nogil:
    """Leftmost-longest without overlaps, in place; returns how many are kept."""
    cdef long i, kept = 0, free_at = 0
    qsort(hits, n, sizeof(Hit), _by_start_longest)
    for i in range(n):
        if hits[i].start + 1 >= free_at:
            hits[kept] = hits[i]
            kept += 1
            free_at = hits[i].end - 1
    return kept


# Bits of ``kind`` per pattern; match.py's _KIND_* builds the table with the same values. C
# constants, so the per-match tests below do not look up Python globals.
cdef enum:
    THREAT = 1
    CONTEXT = 2
    GATE = 4
    CONFUSER = 8


cdef class TextScan:
    """Tables of one compiled rule set, indexed by automaton pattern and proximity signal."""

    cdef const unsigned char[:] kind
    cdef const int[:] mstart
    cdef const int[:] msig
    cdef const unsigned char[:] mgrp
    cdef const unsigned char[:] ngroups
    cdef const int[:] window
    cdef long n_patterns
    cdef long n_signals
    cdef list threat_info
    cdef list context_info

    def __init__(self, kind, mstart, msig, mgrp, ngroups, window, list threat_info,
                 list context_info):
        """``kind``: per pattern, THREAT | CONTEXT | GATE | CONFUSER bits. Proximity terms:
        pattern p belongs to (signal ``msig[k]``, group ``mgrp[k]``) for k in
        ``mstart[p]`` .. ``mstart[p + 1]``. Per signal: its number of groups and window.
        ``threat_info`` / ``context_info``: per pattern, what match.py's _Scanner keeps."""
        cdef long k
        self.kind = kind
        self.mstart = mstart
        self.msig = msig
        self.mgrp = mgrp
        self.ngroups = ngroups
        self.window = window
        self.n_patterns = len(kind)
        self.n_signals = len(ngroups)
        if len(mstart) != self.n_patterns + 1 or len(msig) != len(mgrp):
            raise ValueError("inconsistent proximity tables")
        if len(window) != self.n_signals:
            raise ValueError("inconsistent signal tables")
        if len(threat_info) != self.n_patterns or len(context_info) != self.n_patterns:
            raise ValueError("inconsistent pattern tables")
        self.threat_info = threat_info
        self.context_info = context_info
        # Checked once here, so the per-call arrays below can be indexed without checks.
        for k in range(len(msig)):
            if not 0 <= self.msig[k] < self.n_signals or self.mgrp[k] >= self.ngroups[self.msig[k]]:
                raise ValueError("a proximity membership outside the signal tables")
        for k in range(self.n_signals):
            if not 1 <= self.ngroups[k] <= 4:
                raise ValueError("a proximity signal needs 1 to 4 groups")
        for k in range(self.n_patterns):
            if not 0 <= self.mstart[k] <= self.mstart[k + 1] <= len(msig):
                raise ValueError("proximity membership offsets out of order")

    def run(self, list found, bytes padded):
        """``found``: the automaton's (pattern, start, end) tuples for ``padded``.

        Returns what match.py's ``Matcher._layered`` returns: phrase hits, anchor starts,
        ambiguous words (start, role), confuser spans, cue names, traditional-bug names, gate
        matches and the indexes of the proximity signals that hold.
        """
        cdef long n = len(found)
        cdef long i, j, k, p, s, g, nt = 0, nc = 0, no = 0, nb = 0
        cdef long start, oldest
        cdef Hit h
        cdef Hit* threat = NULL
        cdef Hit* context = NULL
        cdef Hit* occ = NULL
        cdef Hit* every = NULL
        cdef long* blocked = NULL
        cdef unsigned char* seen = NULL
        cdef unsigned char* mask = NULL
        cdef unsigned char* candidate = NULL
        cdef unsigned char* held = NULL
        cdef long* latest = NULL
        cdef long* latest_tok = NULL
        cdef long qpos = 0
        cdef long tokens = 0
        cdef long oldest_tok
        cdef const unsigned char* text = padded
        cdef long text_len = len(padded)
        cdef object item
        gate = []
        held_out = []
        hits = []
        anchors = []
        pending = []
        spans = []
        cue_names = []
        trad_names = []
        try:
            threat = <Hit*>malloc((n + 1) * sizeof(Hit))
            context = <Hit*>malloc((n + 1) * sizeof(Hit))
            occ = <Hit*>malloc((n + 1) * sizeof(Hit))
            every = <Hit*>malloc((n + 1) * sizeof(Hit))
            blocked = <long*>malloc((2 * n + 2) * sizeof(long))
            seen = <unsigned char*>calloc(self.n_patterns + 1, 1)
            mask = <unsigned char*>calloc(self.n_signals + 1, 1)
            candidate = <unsigned char*>calloc(self.n_signals + 1, 1)
            held = <unsigned char*>calloc(self.n_signals + 1, 1)
            latest = <long*>malloc((4 * self.n_signals + 4) * sizeof(long))
            latest_tok = <long*>malloc((4 * self.n_signals + 4) * sizeof(long))
            if (threat == NULL or context == NULL or occ == NULL or every == NULL
                    or blocked == NULL
                    or seen == NULL or mask == NULL or candidate == NULL or held == NULL
                    or latest == NULL or latest_tok == NULL):
                raise MemoryError()
            # One pass: layers, and which groups of which signals have a term at all.
            for i in range(n):
                item = found[i]
                h.idx = item[0]
                h.start = item[1]
                h.end = item[2]
                h.pos = i
                p = h.idx
                if p < 0 or p >= self.n_patterns or h.start < 0 or h.end > text_len \
                        or h.start >= h.end:
                    raise ValueError("a match outside the tables or the text")
                every[i] = h
                if self.kind[p] & THREAT:
                    threat[nt] = h
                    nt += 1
                if self.kind[p] & CONTEXT:
                    context[nc] = h
                    nc += 1
                if self.kind[p] & GATE:
                    gate.append(item)
                if not seen[p]:
                    seen[p] = 1
                    for k in range(self.mstart[p], self.mstart[p + 1]):
                        mask[self.msig[k]] |= <unsigned char>(1 << self.mgrp[k])
            nt = _longest(threat, nt)
            nc = _longest(context, nc)
            for i in range(nt):
                phrases, anchor, ambiguous, confuser = self.threat_info[threat[i].idx]
                hits.extend(phrases)
                if anchor:
                    anchors.append(threat[i].start)
                for role in ambiguous:
                    pending.append((threat[i].start, role))
                # Confusers swallow proximity terms: their inner ranges, in text order.
                if self.kind[threat[i].idx] & CONFUSER:
                    blocked[2 * nb] = threat[i].start + 1
                    blocked[2 * nb + 1] = threat[i].end - 1
                    spans.append((threat[i].start + 1, threat[i].end - 1))
                    nb += 1
            for i in range(nc):
                cue, trad = self.context_info[context[i].idx]
                cue_names.extend(cue)
                trad_names.extend(trad)
            any_candidate = False
            for s in range(self.n_signals):
                if mask[s] == (1 << self.ngroups[s]) - 1:
                    candidate[s] = 1
                    any_candidate = True
            if not any_candidate:
                return hits, anchors, pending, spans, cue_names, trad_names, gate, held_out
            # Occurrences of the candidates' terms, by start, outside confusers.
            for i in range(n):
                p = every[i].idx
                for k in range(self.mstart[p], self.mstart[p + 1]):
                    if candidate[self.msig[k]]:
                        occ[no] = every[i]
                        no += 1
                        break
            qsort(occ, no, sizeof(Hit), _by_start)
            for i in range(4 * self.n_signals):
                latest[i] = -1
            j = 0
            for i in range(no):
                start = occ[i].start
                # Spaces before this start, counted once over the text (starts are sorted):
                # the words between two occurrences are the difference of their counts.
                while qpos < start:
                    if text[qpos] == 32:
                        tokens += 1
                    qpos += 1
                while j < nb and blocked[2 * j + 1] <= start + 1:
                    j += 1
                if j < nb and blocked[2 * j] <= start + 1:
                    continue
                p = occ[i].idx
                for k in range(self.mstart[p], self.mstart[p + 1]):
                    s = self.msig[k]
                    if not candidate[s] or held[s]:
                        continue
                    latest[4 * s + self.mgrp[k]] = start
                    latest_tok[4 * s + self.mgrp[k]] = tokens
                    oldest = latest[4 * s]
                    oldest_tok = latest_tok[4 * s]
                    for g in range(1, self.ngroups[s]):
                        if latest[4 * s + g] < oldest:
                            oldest = latest[4 * s + g]
                            oldest_tok = latest_tok[4 * s + g]
                    if oldest < 0:
                        continue
                    # Words between the two starts are the spaces between them.
                    if tokens - oldest_tok <= self.window[s]:
                        held[s] = 1
            held_out = [s for s in range(self.n_signals) if held[s]]
            return hits, anchors, pending, spans, cue_names, trad_names, gate, held_out
        finally:
            free(threat)
            free(context)
            free(occ)
            free(every)
            free(blocked)
            free(seen)
            free(mask)
            free(candidate)
            free(held)
            free(latest)
            free(latest_tok)


def collapse(bytes raw, bytes table):
    """``b" ".join(raw.translate(table).split())`` in one pass, for a ``table`` that leaves
    spaces as the only ASCII whitespace (normalize.py's tables): no object per word."""
    cdef const unsigned char* src = raw
    cdef const unsigned char* tab = table
    cdef Py_ssize_t n = len(raw), i, j = 0
    cdef unsigned char c
    cdef bint space = True  # drops leading spaces
    if len(table) != 256:
        raise ValueError("a translation table has 256 entries")
    cdef unsigned char* out = <unsigned char*>malloc(n + 1)
    if out == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            c = tab[src[i]]
            if c == 32:
                if not space:
                    out[j] = 32
                    j += 1
                    space = True
            else:
                out[j] = c
                j += 1
                space = False
        if j > 0 and out[j - 1] == 32:
            j -= 1
        return out[:j]
    finally:
        free(out)


def collapse_cjk(bytes raw, bytes table):
    """``collapse`` that also makes every kana or CJK ideograph (U+3040..U+9FFF, three UTF-8
    bytes led by E3 81..E9) a token of its own, as normalize.py's ``_CJK`` substitution does:
    one pass, no object per character."""
    cdef const unsigned char* src = raw
    cdef const unsigned char* tab = table
    cdef Py_ssize_t n = len(raw), i = 0, j = 0
    cdef unsigned char c
    cdef bint space = True  # drops leading spaces
    if len(table) != 256:
        raise ValueError("a translation table has 256 entries")
    cdef unsigned char* out = <unsigned char*>malloc(2 * n + 1)
    if out == NULL:
        raise MemoryError()
    try:
        while i < n:
            c = src[i]
            if (i + 2 < n and 0x80 <= src[i + 1] <= 0xBF and 0x80 <= src[i + 2] <= 0xBF
                    and ((c == 0xE3 and src[i + 1] >= 0x81) or 0xE4 <= c <= 0xE9)):
                if not space:
                    out[j] = 32
                    j += 1
                out[j] = tab[c]
                out[j + 1] = tab[src[i + 1]]
                out[j + 2] = tab[src[i + 2]]
                out[j + 3] = 32
                j += 4
                space = True
                i += 3
                continue
            c = tab[c]
            if c == 32:
                if not space:
                    out[j] = 32
                    j += 1
                    space = True
            else:
                out[j] = c
                j += 1
                space = False
            i += 1
        if j > 0 and out[j - 1] == 32:
            j -= 1
        return out[:j]
    finally:
        free(out)
