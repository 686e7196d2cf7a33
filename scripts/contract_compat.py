"""The compatibility policy of the public event contracts (docs/EVENTS.md), as a check.

Within a version a public contract may only grow: new optional fields, new enum values,
looser limits. Anything else breaks a producer or consumer written against the released
schema: a field removed or retyped, a field newly required or no longer required, an enum
value dropped, a limit tightened, a pattern or format changed. A breaking change is a new
version (a new event class, published alongside the old one for a deprecation period).

`python scripts/contract_compat.py` compares schemas/events/ with schemas/released/ and
exits 1 naming every breaking change; `--release` copies the current public schemas to
schemas/released/ (done when a release is cut, after the check passed).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CURRENT_DIR = ROOT / "schemas" / "events"
RELEASED_DIR = ROOT / "schemas" / "released"
# Keys whose value must not change at all within a version.
_FIXED = ("const", "pattern", "format")
# Limits that may only loosen: (key, True if a larger value is looser).
_LIMITS = (
    ("maxLength", True),
    ("maximum", True),
    ("maxItems", True),
    ("minLength", False),
    ("minimum", False),
    ("minItems", False),
)

Schema = dict[str, Any]


def breaking_changes(released: Schema, current: Schema) -> list[str]:
    """Every way `current` breaks what `released` promised (empty: compatible)."""
    return _compare(released, current, released, current, "$")


def _resolve(node: Schema, root: Schema) -> Schema:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        node = root["$defs"][name]
    return node


def _variants(node: Schema, root: Schema) -> list[Schema]:
    """The alternatives of a node (`anyOf` / `oneOf`), each resolved; itself if none."""
    node = _resolve(node, root)
    options = node.get("anyOf") or node.get("oneOf")
    return [_resolve(option, root) for option in options] if options else [node]


def _kind(node: Schema) -> str:
    kind = node.get("type", "any")
    return ",".join(sorted(kind)) if isinstance(kind, list) else str(kind)


def _compare(old: Schema, new: Schema, old_root: Schema, new_root: Schema, at: str) -> list[str]:
    old_variants = {_kind(v): v for v in _variants(old, old_root)}
    new_variants = {_kind(v): v for v in _variants(new, new_root)}
    problems = [f"{at}: type {kind} removed" for kind in old_variants if kind not in new_variants]
    for kind, before in old_variants.items():
        if kind in new_variants:
            problems += _compare_node(before, new_variants[kind], old_root, new_root, at)
    return problems


def _compare_node(
    old: Schema, new: Schema, old_root: Schema, new_root: Schema, at: str
) -> list[str]:
    problems = [
        f"{at}: {key} changed from {old.get(key)!r} to {new.get(key)!r}"
        for key in _FIXED
        if old.get(key) != new.get(key)
    ]
    problems += _limits(old, new, at)
    if "enum" in old:
        kept: list[Any] = new.get("enum") or old["enum"]
        dropped = [v for v in old["enum"] if v not in kept]
        problems += [f"{at}: enum value {v!r} removed" for v in dropped]
    if "items" in old and "items" in new:
        problems += _compare(old["items"], new["items"], old_root, new_root, f"{at}[]")
    return problems + _properties(old, new, old_root, new_root, at)


def _limits(old: Schema, new: Schema, at: str) -> list[str]:
    problems = []
    for key, larger_is_looser in _LIMITS:
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        loosened = after is None or (
            before is not None and (after > before if larger_is_looser else after < before)
        )
        if not loosened:
            problems.append(f"{at}: {key} tightened from {before} to {after}")
    return problems


def _properties(old: Schema, new: Schema, old_root: Schema, new_root: Schema, at: str) -> list[str]:
    before, after = old.get("properties", {}), new.get("properties", {})
    problems = [f"{at}.{name}: removed" for name in before if name not in after]
    for name, schema in before.items():
        if name in after:
            problems += _compare(schema, after[name], old_root, new_root, f"{at}.{name}")
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    problems += [f"{at}.{n}: newly required" for n in sorted(new_required - old_required)]
    problems += [f"{at}.{n}: no longer required" for n in sorted(old_required - new_required)]
    return problems


def public_contracts() -> list[str]:
    """`<type>.v<version>` of every public event (shared.contracts.events.PUBLIC_EVENTS)."""
    from shared.contracts.events import PUBLIC_EVENTS

    return [
        f"{m.model_fields['type'].default}.v{m.model_fields['version'].default}"
        for m in PUBLIC_EVENTS
    ]


def unreleased() -> list[str]:
    """Public contracts with no released schema yet (new versions, before their release)."""
    return [n for n in public_contracts() if not (RELEASED_DIR / f"{n}.json").exists()]


def check() -> list[str]:
    """Breaking changes of every released public contract against its current schema."""
    problems = []
    for name in public_contracts():
        released_path = RELEASED_DIR / f"{name}.json"
        if not released_path.exists():
            continue
        released = json.loads(released_path.read_text())
        current = json.loads((CURRENT_DIR / f"{name}.json").read_text())
        problems += [f"{name} {p}" for p in breaking_changes(released, current)]
    return problems


def main(argv: list[str]) -> int:
    problems = check()
    for problem in problems:
        print(f"breaking: {problem}")
    for name in unreleased():
        print(f"not released yet: {name}")
    if problems:
        return 1
    if "--release" in argv:
        RELEASED_DIR.mkdir(parents=True, exist_ok=True)
        for name in public_contracts():
            shutil.copy(CURRENT_DIR / f"{name}.json", RELEASED_DIR / f"{name}.json")
            print(f"released {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
