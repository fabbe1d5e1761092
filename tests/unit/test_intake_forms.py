"""The new-client form: flat browser fields to the API's shape, and the API's errors back to fields."""
from werkzeug.datastructures import MultiDict

from services.intake.entrypoints.pages import _client_input, _flatten
from services.intake.entrypoints.schemas import ClientSchema


def test_form_fields_become_the_api_shape_and_validate_with_the_api_schema():
    form = MultiDict([("clinic_id", "north"), ("first_name", " Robin "), ("last_name", "Lee"),
                      ("concerns", "anxiety"), ("concerns", "work"), ("language", "es"), ("days", "mon"),
                      ("email", ""), ("counselor_id", "")])
    data = ClientSchema().load(_client_input(form))
    assert data["first_name"] == "Robin" and data["email"] is None and data["counselor_id"] is None
    assert data["concerns"] == ["anxiety", "work"]
    assert data["preferences"] == {"language": "es", "modality": "either", "counselor_gender": None,
                                   "days": ["mon"], "times": []}


def test_errors_are_flattened_to_the_form_fields_they_belong_to():
    errors = ClientSchema().validate(_client_input(MultiDict([("language", "spanish"), ("concerns", "x"),
                                                              ("days", "someday")])))
    flat = _flatten(errors)
    assert {"clinic_id", "first_name", "last_name", "language", "concerns", "days"} <= set(flat)
    assert all(isinstance(message, str) for message in flat.values())
