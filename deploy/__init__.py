"""Deployment and local-run code: an importable package so that tests/ and deploy/bench share deploy.local.

Run from the repository root (pytest's rootdir, `make`), so `import deploy...` resolves there; it is not part of
the installed distribution (pyproject.toml packages only services*).
"""
