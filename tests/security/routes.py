"""Every (service, method, rule) the services serve, read from their Flask url_maps.

Read in a child process: building an app connects mongoengine and configures logging, which must not
happen inside the test process.
"""
from __future__ import annotations

import json
import subprocess
import sys

from deploy.local.platform_processes import SERVICES
from deploy.local.runtime import ROOT

LIST_RULES = """
import importlib, json, sys
found = []
for service in sys.argv[1:]:
    app = importlib.import_module(f"services.{service}.entrypoints.app").create_app()
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append([service, method, rule.rule])
print(json.dumps(found))
"""


def served_routes(env: dict[str, str]) -> list[tuple[str, str, str]]:
    done = subprocess.run([sys.executable, "-c", LIST_RULES, *SERVICES], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    return sorted(tuple(r) for r in json.loads(done.stdout.strip().splitlines()[-1]))
