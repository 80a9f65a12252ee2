"""Prompts: the trigger word once, right after the class word, and within CLIP's 77-token context."""

from __future__ import annotations

import pytest

from portrait_studio.models import BACKDROPS, Backdrop
from portrait_studio.services.backdrops import backdrop_phrase
from portrait_studio.services.plan import TRIGGER_WORD, build_prompt, load_styles, trigger_count
from tests.clip_tokenizer import CONTEXT_LENGTH, tokenizer

SUBJECTS = ("man", "woman", "person")


def every_backdrop_phrase() -> list[str]:
    """Each backdrop's words, a solid one with every colour name it can carry."""
    book = load_styles()
    plain = [backdrop_phrase(Backdrop(kind=kind)) for kind in BACKDROPS if kind != "solid"]
    return plain + [backdrop_phrase(Backdrop(kind="solid", color=hex_value)) for hex_value in book.colors.values()]


def all_prompts() -> list[tuple[str, str, str]]:
    book = load_styles()
    return [(style, template, subject) for style, ps in book.prompts.items() for template in ps for subject in SUBJECTS]


def test_every_backdrop_is_offered_and_every_prompt_takes_it() -> None:
    book = load_styles()
    assert set(book.backdrops) == set(BACKDROPS)
    assert all(template.count("{backdrop}") == 1 for ps in book.prompts.values() for template in ps)
    assert len(every_backdrop_phrase()) == 3 + len(book.colors)


def test_four_styles_with_two_prompts_each() -> None:
    book = load_styles()
    assert set(book.prompts) == {"corporate", "business_casual", "creative", "formal"}
    assert all(len(prompts) == 2 for prompts in book.prompts.values())


@pytest.mark.parametrize(("style", "template", "subject"), all_prompts())
def test_trigger_word_follows_the_class_word_exactly_once(style: str, template: str, subject: str) -> None:
    prompt = build_prompt(template, subject, backdrop_phrase(Backdrop()))
    assert trigger_count(prompt) == 1
    assert f"{subject} {TRIGGER_WORD}" in prompt


def test_the_negative_prompt_has_no_trigger_word() -> None:
    assert trigger_count(load_styles().negative_prompt) == 0


def test_the_tokenizer_counts_like_clip() -> None:
    clip = tokenizer()
    if clip is None:
        pytest.skip("CLIP vocabulary not downloaded: run `make setup`")
    # Reference counts from CLIP's own tokenizer.
    assert clip.encode("a photo of a cat") == [320, 1125, 539, 320, 2368]
    assert clip.count_with_specials("a photo of a cat") == 7


@pytest.mark.parametrize(("style", "template", "subject"), all_prompts())
def test_prompts_fit_in_clips_context(style: str, template: str, subject: str) -> None:
    clip = tokenizer()
    if clip is None:
        pytest.skip("CLIP vocabulary not downloaded: run `make setup`")
    longest = max(
        (build_prompt(template, subject, phrase) for phrase in every_backdrop_phrase()), key=clip.count_with_specials
    )
    assert clip.count_with_specials(longest) < CONTEXT_LENGTH, longest


def test_the_negative_prompt_fits_in_clips_context() -> None:
    clip = tokenizer()
    if clip is None:
        pytest.skip("CLIP vocabulary not downloaded: run `make setup`")
    assert clip.count_with_specials(load_styles().negative_prompt) <= CONTEXT_LENGTH


def test_the_negative_prompt_keeps_the_face_uncovered() -> None:
    # Real PhotoMaker outputs with sunglasses or a covered face are dropped `no_face` or `not_like_you` by the
    # gate (benchmarks/identity.py --real): the model is asked not to draw them, and no prompt asks for them.
    negative = load_styles().negative_prompt
    for cover in ("sunglasses", "hat", "mask"):
        assert cover in negative
    for templates in load_styles().prompts.values():
        for template in templates:
            assert not any(cover in template for cover in ("sunglasses", " hat", "mask"))
