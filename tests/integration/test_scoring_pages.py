"""Scoring's alliance and trajectory pages on the real database: people by the `person` macro (names are put
in by people.js from intake), dimensions and rules in words, every column header with text, and links that
lead to pages (the trajectory, the client's record in intake)."""
from __future__ import annotations

import re

from tests.integration import test_scoring_api as scoring_api

# The scoring app and its caseload (two counselors, a falling client) as test_scoring_api builds them.
scoring, caseload, as_ = scoring_api.scoring, scoring_api.caseload, scoring_api.as_


def test_the_alliance_page_names_people_by_the_macro_and_dimensions_in_words(scoring, caseload):
    counselor = as_(scoring, caseload["counselor"], caseload["org"], "counselor")
    page = counselor.get("/alliance").get_data(as_text=True)

    falling = caseload["falling"]
    assert f'data-person-kind="client" data-person-id="{falling}"' in page
    assert f'data-person-kind="staff" data-person-id="{caseload["counselor"]}"' in page
    assert not re.search(rf">\s*{re.escape(falling)}\s*<", page)  # never the raw id as text
    assert "collaboration on tasks" in page  # the task fell: in words, not the code
    assert not re.search(r"<th[^>]*>\s*</th>", page)  # every header cell says what its column is
    intake = scoring.extensions["rapport.settings"].intake_url
    assert f'href="{intake}/clients/{falling}"' in page
    for link in re.findall(r'href="(/alliance/trajectory\?[^"]+)"', page):
        answer = counselor.get(link.replace("&amp;", "&"))
        assert answer.status_code == 200 and answer.mimetype == "text/html", link


def test_the_trajectory_page_names_the_client_and_counselor_and_leads_to_the_record(scoring, caseload):
    counselor = as_(scoring, caseload["counselor"], caseload["org"], "counselor")
    falling = caseload["falling"]
    page = counselor.get(f"/alliance/trajectory?client_id={falling}&counselor_id={caseload['counselor']}"
                         ).get_data(as_text=True)

    assert re.search(r"<h1><span class=\"person\" data-person-kind=\"client\" data-person-id=\"" + re.escape(falling),
                     page)
    assert f'data-person-kind="staff" data-person-id="{caseload["counselor"]}"' in page
    assert f'href="{scoring.extensions["rapport.settings"].intake_url}/clients/{falling}"' in page
    assert "Agreement on goals</th>" in page and "Emotional bond</th>" in page
