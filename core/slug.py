"""Model identity: the Platform slug `owner/project/model` and its Triton model name.

The Triton name joins the three parts with `~`, a character no part may contain, so the mapping
is deterministic and reversible (and `~` needs no escaping in URLs or file names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PART = re.compile(r"[a-z0-9._-]{1,64}")
_SEP = "~"


class InvalidSlugError(ValueError):
    """The slug does not name a model the way the Platform does."""


@dataclass(frozen=True, order=True)
class Slug:
    owner: str
    project: str
    model: str

    @classmethod
    def parse(cls, text: str) -> Slug:
        parts = text.split("/")
        if len(parts) != 3:
            raise InvalidSlugError(f"invalid slug {text!r}: expected owner/project/model")
        return cls.from_parts(*parts)

    @classmethod
    def from_parts(cls, owner: str, project: str, model: str) -> Slug:
        for part in (owner, project, model):
            if not _PART.fullmatch(part) or part in {".", ".."}:
                raise InvalidSlugError(
                    f"invalid slug part {part!r}: use 1-64 of a-z, 0-9, '-', '_', '.' (not '.' or '..')"
                )
        return cls(owner, project, model)

    @classmethod
    def from_triton_name(cls, name: str) -> Slug:
        parts = name.split(_SEP)
        if len(parts) != 3:
            raise InvalidSlugError(f"{name!r} is not a Trident model name")
        return cls.from_parts(*parts)

    @property
    def triton_name(self) -> str:
        return _SEP.join((self.owner, self.project, self.model))

    def __str__(self) -> str:
        return f"{self.owner}/{self.project}/{self.model}"
