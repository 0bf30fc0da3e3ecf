"""Normalisation folds the tricks that hide keywords from a matcher."""

from __future__ import annotations

import pytest

from bot.decide.normalize import normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Model  Stealing", "model stealing"),
        ("label-flipping / label_flipping", "label flipping label flipping"),
        ("torch.load(weights_only=False)", "torch load weights only false"),
        ("poi\u200bson\u200dED data", "poisoned data"),
        ("soft\u00adhyphen", "softhyphen"),
        ("ＭＯＤＥＬ ｅｘｔｒａｃｔｉｏｎ", "model extraction"),
        ("dаtа pоisоning", "data poisoning"),  # Cyrillic а and о
        ("ρrompt injection", "prompt injection"),  # Greek rho
        ("\ufeffBOM first", "bom first"),
        ("STRASSE straße", "strasse strasse"),
        ("", ""),
        ("!!!", ""),
    ],
    ids=["spaces", "separators", "code", "zero-width", "soft-hyphen", "full-width",
         "cyrillic", "greek", "bom", "casefold", "empty", "punctuation-only"],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_cut_before_work() -> None:
    assert normalize("a" * 10 + " tail", max_chars=5) == "aaaaa"


def test_ascii_and_unicode_paths_agree() -> None:
    text = "Adversarial-Patch on STOP signs (v2.1)!"
    assert normalize(text) == normalize(text + "\u200b")
