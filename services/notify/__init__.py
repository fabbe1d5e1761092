"""Notify: gets alerts and referrals to counselors and supervisors."""
