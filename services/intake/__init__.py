"""Intake: the front desk. Registers clients and collects their session feedback and exit interviews."""
