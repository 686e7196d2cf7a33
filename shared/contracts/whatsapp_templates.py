"""Template body parameters from lead fields, validated before anything is sent.

Meta refuses parameter text with new lines, tabs or more than 4 consecutive spaces, and a
parameter count other than the template's (132000); catching it here keeps a bad lead or
a bad mapping from costing a request, and tells the creator which field is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Lead fields a template parameter may name (the API accepts only these).
LEAD_FIELDS = ("name", "first_name", "message", "phone", "instagram_username", "creator_name")
MAX_PARAMETER_CHARS = 1024  # UNCONFIRMED exact Meta limit; long text belongs in the body
_SPACES = re.compile(r"[\t\r\n]+| {5,}")


class TemplateParameterError(ValueError):
    """A lead field the template needs is missing or not sendable."""


def lead_values(
    name: str, message: str, phone: str | None, instagram: str | None, creator: str
) -> dict[str, str | None]:
    return {
        "name": name,
        "first_name": name.split()[0] if name.split() else None,
        "message": message,
        "phone": phone,
        "instagram_username": instagram,
        "creator_name": creator,
    }


def render_parameters(
    fields: Sequence[str], values: Mapping[str, str | None], expected: int | None = None
) -> tuple[str, ...]:
    """The body parameters in order; raises TemplateParameterError naming the problem."""
    if expected is not None and len(fields) != expected:
        raise TemplateParameterError(
            f"the template takes {expected} parameters, {len(fields)} are mapped"
        )
    rendered = []
    for position, field in enumerate(fields, start=1):
        if field not in LEAD_FIELDS:
            raise TemplateParameterError(f"parameter {position}: unknown lead field {field!r}")
        text = _SPACES.sub(" ", values.get(field) or "").strip()
        if not text:
            raise TemplateParameterError(f"parameter {position}: the lead has no {field}")
        rendered.append(text[:MAX_PARAMETER_CHARS])
    return tuple(rendered)
