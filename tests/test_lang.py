"""The English-or-not guess the semantic combination uses (bot/decide/lang.py)."""

from __future__ import annotations

import pytest

from bot.decide.lang import is_english


@pytest.mark.parametrize("text", [
    "Anyone can push rows into the table the model is refit on every night.",
    "The scoring API returns full-precision scores, so the decision boundary can be rebuilt.",
    "Typo in quickstart: `model.fit(x_train, y_trian)`",
    "",
    "1234 5678",
])
def test_english_and_wordless_text_reads_as_english(text: str) -> None:
    assert is_english(text)


@pytest.mark.parametrize("text", [
    "Cualquiera puede subir filas a la tabla con la que se reentrena el modelo cada noche.",
    "Qualquer pessoa pode enviar linhas para a tabela usada no retreino do modelo.",
    "N'importe qui peut ajouter des lignes dans la table sur laquelle le modèle est réentraîné.",
    "Jeder kann Zeilen in die Tabelle schreiben, mit der das Modell jede Nacht neu trainiert wird.",
    "任何人都可以向模型每晚重新训练所用的表中写入数据。",
    "誰でもモデルの再学習に使うテーブルに行を追加できます。",
    "Любой может добавить строки в таблицу, на которой модель переобучается каждую ночь.",
    # Code and an English error message inside a Chinese issue do not make it English.
    "教程里的示例代码跑不通，第三节报错：AttributeError: 'Tensor' object has no attribute 'grad'",
])
def test_the_seven_other_languages_do_not(text: str) -> None:
    assert not is_english(text)


def test_word_count_counts_two_cjk_characters_as_a_word() -> None:
    from bot.decide.lang import word_count

    assert word_count("Model endpoint") == 2
    assert word_count("details in the private report, see INC-1234") == 7
    assert word_count("模型接口泄露") == 3
    assert word_count("") == 0
