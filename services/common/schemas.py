"""Base schemas for the HTTP APIs, one per direction, and the pager for mongoengine querysets."""
from __future__ import annotations

import unicodedata

from flask_smorest import Page, pagination
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .events import Id


class RequestSchema(Schema):
    """Input: strict, so that a misspelt field is a 422 naming it rather than silently ignored."""

    class Meta:
        unknown = RAISE


class ResponseSchema(Schema):
    """Output: what the server says; fields the client cannot set are dump_only in the request schemas."""


# The same id rule as the event contracts: what an API accepts as an id can travel in an event.
IdField = Id

# Characters that reorder or hide text (bidi embeddings, overrides, isolates and marks): in a name they make
# "Ana" display as something else on every page and export that shows it.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class PlainText(validate.Validator):
    """Refuses control characters (NUL, escapes; line breaks only where `multiline`) and bidi controls."""

    def __init__(self, multiline: bool = False):
        self.allowed = frozenset("\n\r\t") if multiline else frozenset()

    def __call__(self, value: str) -> str:
        for char in value:
            if char in BIDI_CONTROLS or (unicodedata.category(char) == "Cc" and char not in self.allowed):
                raise ValidationError(f"Contains a control character (U+{ord(char):04X}); type it again.")
        return value


class QuerySetPage(Page):
    """flask-smorest's pager for a mongoengine QuerySet: count on the server, slice with skip/limit."""

    @property
    def item_count(self) -> int:
        return self.collection.count()


# flask-smorest bounds page_size but not page: a page far out made skip() overflow MongoDB's 64-bit integers
# (a 500). Every paginated route gets the bound, in its OpenAPI parameters too; this module is imported by
# every API module before its routes are decorated.
MAX_PAGE = 10_000
_unbounded_pagination_schema = pagination._pagination_parameters_schema_factory


def _bounded_pagination_schema(def_page, def_page_size, def_max_page_size):
    unbounded = _unbounded_pagination_schema(def_page, def_page_size, def_max_page_size)

    class BoundedPaginationParametersSchema(unbounded):
        page = fields.Integer(load_default=def_page, validate=validate.Range(min=1, max=MAX_PAGE))
    return BoundedPaginationParametersSchema


pagination._pagination_parameters_schema_factory = _bounded_pagination_schema
