"""Referral: matches clients to counselors and recommends a better-suited counselor when the fit is poor."""
