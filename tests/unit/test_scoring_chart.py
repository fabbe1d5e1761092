import xml.etree.ElementTree as ET

from services.scoring.entrypoints.chart import describe, render_trajectory

SVG = "{http://www.w3.org/2000/svg}"
TRAJECTORY = {
    "client_id": "c-1", "counselor_id": "co-1", "cutoff_total": 27, "scale": (0, 30), "subscale_scale": (0, 10),
    "points": [
        {"session_number": 1, "total": 29, "subscales": {"goal": 10, "task": 10, "bond": 9}, "alerts": []},
        {"session_number": 2, "total": 28, "subscales": {"goal": 9, "task": 10, "bond": 9}, "alerts": []},
        {"session_number": 3, "total": 22, "subscales": {"goal": 9, "task": 4, "bond": 9}, "below_cutoff": True,
         "alerts": ["rupture", "persistently_low"]},
    ],
}


def test_the_chart_is_standalone_svg_with_every_line_the_cutoff_and_alert_markers():
    root = ET.fromstring(render_trajectory(TRAJECTORY))
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    lines = {p.get("id"): p.get("points").split() for p in root.iter(f"{SVG}polyline")}
    assert set(lines) == {"line-total", "line-goal", "line-task", "line-bond"}
    assert all(len(points) == 3 for points in lines.values())
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "cutoff 27" in texts and {"Total", "Goal", "Task", "Bond", "Alert"} <= set(texts)
    markers = [g for g in root.iter(f"{SVG}g") if g.get("class") == "alert-marker"]
    assert [m.find(f"{SVG}title").text for m in markers] == ["Session 3: Sudden fall, Low for several sessions"]
    # The level flag is a ring of its own, not an alert.
    flags = [g for g in root.iter(f"{SVG}g") if g.get("class") == "flag-marker"]
    assert [f.find(f"{SVG}title").text for f in flags] == ["Session 3: below the cutoff"]
    assert "Below cutoff" in texts
    # The lowest total sits lowest on the chart (SVG y grows downwards).
    ys = [float(p.split(",")[1]) for p in lines["line-total"]]
    assert ys[2] > ys[0]


def test_the_text_alternative_says_what_the_chart_shows():
    text = describe(TRAJECTORY)
    assert "totals by session 1: 29, 2: 28, 3: 22" in text
    assert "flagged below it at session(s) 3" in text
    assert "session 3: Sudden fall, Low for several sessions" in text
    root = ET.fromstring(render_trajectory(TRAJECTORY))
    assert root.find(f"{SVG}desc").text == text and "c-1" in root.find(f"{SVG}title").text


def test_a_single_session_and_no_cutoff_still_render():
    one = {**TRAJECTORY, "cutoff_total": None, "points": TRAJECTORY["points"][:1]}
    root = ET.fromstring(render_trajectory(one))
    assert "cutoff" not in " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "No alerts." in describe(one)


def test_the_total_axis_zooms_to_the_data_without_cutting_any_line_off():
    from services.scoring.entrypoints.chart import BOTTOM, HEIGHT, TOP
    high_ratings = {**TRAJECTORY, "cutoff_total": 36, "scale": (0, 40), "points": [
        {"session_number": 1, "total": 39, "subscales": {"goal": 10, "task": 9.5, "bond": 9.5}, "alerts": []},
        {"session_number": 2, "total": 31, "subscales": {"goal": 9, "task": 9, "bond": 6}, "alerts": ["rupture"]},
    ]}
    root = ET.fromstring(render_trajectory(high_ratings))
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "20" in labels and "40" in labels and "0" not in labels  # from 20 (bond at 6/10 = 24) to 40
    for line in root.iter(f"{SVG}polyline"):
        assert all(TOP <= float(p.split(",")[1]) <= HEIGHT - BOTTOM for p in line.get("points").split())
