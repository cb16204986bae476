"""The --format template subset: fields, nested fields, json, table headers, errors."""

from __future__ import annotations

import pytest

from isoinspect.cli.template import TemplateError, format_rows, parse, render

ROW = {"ID": "abc", "Names": "web", "State": {"Pid": 42, "Running": True},
       "Args": ["sleep", "9"], "Empty": None}


def test_fields_nested_fields_and_go_printing():
    text = "{{.ID}} {{.State.Pid}} {{.State.Running}} {{.Args}} {{.Empty}}"
    assert render(parse(text), ROW) == "abc 42 true [sleep 9] <nil>"


def test_json_of_a_field_and_of_the_whole_object():
    assert render(parse("{{json .Args}}"), ROW) == '["sleep","9"]'
    assert render(parse("{{ json . }}"), {"a": 1}) == '{"a":1}'
    assert format_rows("json", [{"a": 1}, {"a": 2}], {}) == ['{"a":1}', '{"a":2}']


def test_escaped_tabs_and_table_header_aligned():
    rows = [{"ID": "abc", "Names": "web"}, {"ID": "abcdef", "Names": "db"}]
    assert format_rows("{{.ID}}\\t{{.Names}}", rows, {}) == ["abc\tweb", "abcdef\tdb"]
    assert format_rows("table {{.ID}}\\t{{.Names}}", rows, {"ID": "CONTAINER ID"}) == [
        "CONTAINER ID   NAMES", "abc            web", "abcdef         db"]


def test_upper_lower_and_literal_text():
    assert render(parse("name={{upper .Names}}/{{lower .ID}}"), ROW) == "name=WEB/abc"


@pytest.mark.parametrize("text", ["{{.Bogus}}", "{{.State.Nope}}", "{{.ID.More}}"])
def test_missing_fields_are_errors_with_dockers_code(text):
    with pytest.raises(TemplateError, match="can't evaluate field") as caught:
        render(parse(text), ROW)
    assert caught.value.exit_code == 1


@pytest.mark.parametrize("text", ["{{if .ID}}x{{end}}", "{{.ID", "{{index .Args 0}}", "{{ID}}"])
def test_unsupported_templates_are_refused(text):
    with pytest.raises(TemplateError):
        parse(text)
