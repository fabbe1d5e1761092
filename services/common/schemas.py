"""Base schemas for the HTTP APIs, one per direction, and the pager for mongoengine querysets."""
from __future__ import annotations

from flask_smorest import Page
from marshmallow import RAISE, Schema

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
