"""Parsing LVLM answers into a bounded dynamic goal, and the versioned prompt templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivevlm.models.lvlm.parsing import parse_goal
from drivevlm.models.lvlm.prompts import available_prompts, load_prompt


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("A pedestrian is crossing the road ahead", "A pedestrian is crossing the road ahead"),
        ('  "A cyclist is merging from the right."  ', "A cyclist is merging from the right."),
        ('{"description": "A child runs towards the road"}', "A child runs towards the road"),
        ('```json\n{"risk": "A motorcyclist cuts in"}\n```', "A motorcyclist cuts in"),
        ("```\nA pedestrian waits at the kerb\n```", "A pedestrian waits at the kerb"),
        ("Description: A person steps off the sidewalk", "A person steps off the sidewalk"),
        ("- A cyclist ahead\n- second point", "A cyclist ahead"),
        ("<think>hmm, frames show</think>A pedestrian is close", "A pedestrian is close"),
        ('[{"goal": "A bicycle blocks the lane"}]', "A bicycle blocks the lane"),
        (b"A person crossing", "A person crossing"),
        ('{"description": "A pedestrian cut off by max_tok', "A pedestrian cut off by max_tok"),
    ],
)
def test_usable_answers_become_one_clean_line(answer: object, expected: str) -> None:
    parsed = parse_goal(answer)
    assert parsed.ok
    assert parsed.text == expected


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        (None, "not_text"),
        (42, "not_text"),
        (b"\xff\xfe\x00", "not_text"),
        ("I'm sorry, but I can't help with that.", "refusal"),
        ("As an AI language model, I cannot judge driving", "refusal"),
        ("{}", "empty"),
        ('{"confidence": 0.9}', "empty"),
        ("1234 !!!", "no_letters"),
        ('{"oops": [1, 2', "malformed"),
    ],
)
def test_unusable_answers_say_why(answer: object, reason: str) -> None:
    parsed = parse_goal(answer)
    assert not parsed.ok
    assert parsed.reason == reason
    assert parsed.text == ""


def test_overlong_answer_is_cut_to_max_words() -> None:
    answer = " ".join(f"word{i}" for i in range(50))
    parsed = parse_goal(answer, max_words=20)
    assert parsed.ok and parsed.truncated
    assert parsed.text.split() == [f"word{i}" for i in range(20)]


def test_max_words_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_words"):
        parse_goal("x", max_words=0)


def test_packaged_prompt_renders_with_its_placeholders() -> None:
    assert "dynamic_goal_v1" in available_prompts()
    template = load_prompt("dynamic_goal_v1")
    assert template.placeholders() == {"num_frames", "max_words"}
    text = template.render(num_frames=4, max_words=20)
    assert "4 consecutive" in text and "20 words" in text
    with pytest.raises(ValueError, match="max_words"):
        template.render(num_frames=4)


def test_prompt_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown version 'dynamic_goal_v99'"):
        load_prompt("dynamic_goal_v99")
    with pytest.raises(ValueError, match="<name>_v<N>"):
        load_prompt("dynamic goal")
    bare = tmp_path / "mine.txt"
    bare.write_text("Describe the risk in {max_words} words.")
    with pytest.raises(ValueError, match=r"lacks placeholder\(s\) \['num_frames'\]"):
        load_prompt("dynamic_goal_v7", bare)
    broken = tmp_path / "broken.txt"
    broken.write_text("frames {num_frames} words {max_words")
    with pytest.raises(ValueError, match="malformed template"):
        load_prompt("dynamic_goal_v8", broken)
    good = tmp_path / "good.txt"
    good.write_text("{num_frames} frames, {max_words} words")
    assert load_prompt("dynamic_goal_v9", good).render(num_frames=2, max_words=5) == "2 frames, 5 words"
