"""Model slugs: what the Platform accepts, and a reversible Triton name."""

from __future__ import annotations

import pytest

from core.slug import InvalidSlugError, Slug


@pytest.mark.parametrize(
    "text", ["demo/shapes/detect", "a/b/c", "user_1/proj.v2/yolo-11n", "x" * 64 + "/p/m"]
)
def test_valid_slugs_round_trip_through_the_triton_name(text: str) -> None:
    slug = Slug.parse(text)
    assert str(slug) == text
    assert Slug.from_triton_name(slug.triton_name) == slug
    assert "/" not in slug.triton_name


@pytest.mark.parametrize(
    "text",
    ["a/b", "a/b/c/d", "A/b/c", "a/../c", "a/./c", "a//c", "a/b c/d", "x" * 65 + "/p/m", "a/b/c~d", "a/b/"],
)
def test_invalid_slugs_are_refused(text: str) -> None:
    with pytest.raises(InvalidSlugError):
        Slug.parse(text)


def test_distinct_slugs_never_share_a_triton_name() -> None:
    names = {Slug.parse(t).triton_name for t in ["a-/-b/c", "a/--b/c", "a-/-/b-c", "a_/_b/c", "a/_/_b"] if t}
    assert len(names) == 5
