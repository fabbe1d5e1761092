"""Scoring: turns session feedback into alliance scores and raises alerts when the alliance falls."""
