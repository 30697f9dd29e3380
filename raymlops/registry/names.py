"""Validation of model names, aliases and version references (one place, clear messages)."""

from __future__ import annotations

import re

from raymlops.exceptions import ValidationError

__all__ = ["parse_ref", "split_model_ref", "validate_alias", "validate_model_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")
RESERVED_ALIASES = {"latest"}


def validate_model_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
            field="name",
        )
    return name


def validate_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or _VERSION_LIKE.match(alias):
        raise ValidationError(
            f"invalid alias {alias!r}: use 1-64 letters, digits, '_', '-', starting with a "
            "letter, and not of the form v<number>",
            field="alias",
        )
    if alias.lower() in RESERVED_ALIASES:
        raise ValidationError(f"alias {alias!r} is reserved", field="alias")
    return alias


def parse_ref(ref: object) -> int | str:
    """'3', 3, 'v3' -> 3 (a version); 'champion' or '@champion' -> 'champion' (an alias)."""
    if isinstance(ref, bool):
        raise ValidationError(f"invalid model version reference {ref!r}", field="ref")
    if isinstance(ref, int):
        if ref < 1:
            raise ValidationError(f"model versions start at 1, got {ref}", field="version")
        return ref
    if isinstance(ref, str):
        text = ref.strip().lstrip("@")
        if text.isdigit():
            return parse_ref(int(text))
        if _VERSION_LIKE.match(text):
            return parse_ref(int(text[1:]))
        return validate_alias(text)
    raise ValidationError(f"invalid model version reference {ref!r}", field="ref")


def split_model_ref(text: str, default: int | str | None = "champion") -> tuple[str, int | str]:
    """'name@champion' / 'name@3' / 'name' -> (name, ref); a bare name takes ``default``."""
    name, at, ref_text = text.partition("@")
    ref = parse_ref(ref_text) if at else parse_ref(default)
    return validate_model_name(name), ref
