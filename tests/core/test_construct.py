"""gateway.core.construct builds the same models as validation does (the promises' own
round trip is in test_promise_batch.py): should a pydantic upgrade change the internals it
sets directly, this fails here."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gateway.core.construct import construct


class Answer(BaseModel):
    digest: str
    duplicate: bool = Field(description="with a default, like the publish answer's fields")
    status: str = "fresh"
    nested: dict[str, list[int]] | None = None


def test_construct_equals_validation_in_value_fields_set_and_json() -> None:
    fields = {"digest": "ab" * 32, "duplicate": False, "status": "stale",
              "nested": {"path": [1, 2, 3]}}
    built, validated = construct(Answer, dict(fields)), Answer.model_validate(fields)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set == set(fields)
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_copy(update={"status": "fresh"}).status == "fresh"
    assert construct(Answer, dict(fields)).model_fields_set is built.model_fields_set
