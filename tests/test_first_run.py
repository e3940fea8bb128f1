"""What a newcomer meets first: the skill table says what its numbers are, the demo shows a line per stage where
stdout is not a terminal, and the commands find the data and fail fast offline without the Makefile's variables."""

from __future__ import annotations

from rich.console import Console

from actstore.cli.output import SKILL_TABLE_NOTE, skill_table


def test_the_skill_table_says_what_its_predictivity_and_best_token_are():
    row = {"rank": 1, "stack": "encoder", "layer": 3, "neuron": 865, "predictivity": 0.6812, "best_token": 0}
    console = Console(width=200, record=True)
    console.print(skill_table("top skill neurons of sst2", [row]))
    text = " ".join(console.export_text().split())  # the note wraps at the table's width
    assert "predictivity" in text and "best token" in text and "0.6812" in text
    assert SKILL_TABLE_NOTE in text  # a footnote under the table: both columns are named by what they reduce
    assert "mean over seeds of each seed's highest" in SKILL_TABLE_NOTE
    assert "best for the most seeds" in SKILL_TABLE_NOTE
