"""Base schemas for the HTTP APIs, one per direction, and the pager for mongoengine querysets."""
from __future__ import annotations

from flask_smorest import Page, pagination
from marshmallow import RAISE, Schema, fields, validate

from .events import Id


class RequestSchema(Schema):
    """Input: strict, so that a misspelt field is a 422 naming it rather than silently ignored."""

    class Meta:
        unknown = RAISE


class ResponseSchema(Schema):
    """Output: what the server says; fields the client cannot set are dump_only in the request schemas."""


# The same id rule as the event contracts: what an API accepts as an id can travel in an event.
IdField = Id


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
