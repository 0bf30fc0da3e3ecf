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


def test_compiled_collapse_agrees_with_split_and_join() -> None:
    import random

    from bot.decide import normalize as norm

    assert norm._collapse is not None, "bot/decide/_speedups was not built (pip install -e .)"
    rng = random.Random(11)
    alphabet = b"aB9 \t\n\r.,-_()\x80\xc3\xa9\xe2\x80\x94  "
    for table in (norm._ASCII_LOWER, norm._UTF8_LOWER):
        for _ in range(2000):
            raw = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
            assert norm._collapse(raw, table) == norm._single_spaced(raw.translate(table))


def test_pure_python_path_gives_the_same_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.decide import normalize as norm

    samples = ["Model  POISONING,\tvia (the) API…", "ＭＯＤＥＬ рoisoning — é", "", "  a  ",
               "训练数据投毒，模型 abc日本語テスト", " 投毒", "ａ日本ｘ ", "Отравление данных"]
    compiled = [normalize(s) for s in samples]
    monkeypatch.setattr(norm, "_collapse", None)
    assert [normalize(s) for s in samples] == compiled


def test_cjk_characters_are_tokens_so_phrases_match_inside_unspaced_text() -> None:
    assert normalize("训练数据投毒，模型") == "训 练 数 据 投 毒 模 型"
    assert f" {normalize('投毒')} " in f" {normalize('训练数据投毒')} "
    assert normalize("プロンプト注入") == "プ ロ ン プ ト 注 入"


def test_latin_accents_fold_so_either_spelling_matches() -> None:
    assert normalize("Entraînement des données") == normalize("entrainement des donnees")
    assert normalize("Injeção de prompt") == "injecao de prompt"


def test_russian_folds_the_same_way_on_both_sides() -> None:
    # Look-alike folding turns some Cyrillic letters into Latin ones; a Russian phrase in a
    # rule goes through the same function, so real Russian text still matches it.
    phrase = normalize("отравление обучающих данных")
    text = normalize("Обнаружено ОТРАВЛЕНИЕ обучающих данных в спам-фильтре.")
    assert f" {phrase} " in f" {text} "


def test_compiled_cjk_collapse_agrees_with_the_substitution() -> None:
    import random

    from bot.decide import normalize as norm

    assert norm._collapse_cjk is not None, "bot/decide/_speedups was not built"
    rng = random.Random(5)
    pieces = ["训", "练", "投毒", "テ", "ス", "ー", "a", "B", " ", ".", "\n", "é", "—", "\u3000",
              "\u303f", "\u3040", "\u9fff", "\ua000", "\u2fff", "Ж"]
    for _ in range(2000):
        raw = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))).encode()
        expected = norm._single_spaced(norm._CJK.sub(rb" \g<0> ", raw).translate(
            norm._UTF8_LOWER))
        assert norm._collapse_cjk(raw, norm._UTF8_LOWER) == expected, raw
