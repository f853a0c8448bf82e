"""Label and field selectors must accept, reject and match what kube-apiserver does."""

from __future__ import annotations

from typing import Any

import pytest

from strongroom.model.selectors import (
    SELECTABLE_FIELDS,
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    label_key_errors,
    label_selector_from_object,
    label_value_errors,
    object_fields,
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
)

# ---------------------------------------------------------------------------
# Label selector strings: parsing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", Requirement("a", "=", ("b",))),
        ("a==b", Requirement("a", "=", ("b",))),
        ("a!=b", Requirement("a", "!=", ("b",))),
        ("a in (x,y)", Requirement("a", "in", ("x", "y"))),
        ("a notin (x)", Requirement("a", "notin", ("x",))),
        ("a", Requirement("a", "exists", ())),
        ("!a", Requirement("a", "!", ())),
        ("a>5", Requirement("a", "gt", ("5",))),
        ("a<5", Requirement("a", "lt", ("5",))),
    ],
)
def test_each_operator_parses_to_its_requirement(text: str, expected: Requirement) -> None:
    assert parse_label_selector(text).requirements == (expected,)


def test_double_equals_is_normalised_to_single_equals() -> None:
    assert Requirement("a", "==", ("b",)).operator == "="
    assert parse_label_selector("a==b") == parse_label_selector("a=b")


def test_whitespace_around_tokens_is_ignored() -> None:
    spaced = parse_label_selector("  a = b ,\tc\n!=\rd , e  in ( x , y ) , ! f  ")
    assert spaced == parse_label_selector("a=b,c!=d,e in (x,y),!f")


def test_whitespace_inside_set_operator_keyword_is_required() -> None:
    # 'ain' is a key, not 'a in'; the next token then is not an operator.
    with pytest.raises(SelectorError, match=r"found '\(', expected: in, notin, =, ==, !=, gt, lt"):
        parse_label_selector("ain (x)")


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_selector_selects_everything(text: str) -> None:
    selector = parse_label_selector(text)
    assert selector.is_empty()
    assert selector == LabelSelector.everything()
    assert selector.matches({"any": "thing"})
    assert selector.matches({})
    assert selector.matches(None)


def test_requirements_are_ordered_by_key() -> None:
    selector = parse_label_selector("z=1,a=2,m")
    assert [requirement.key for requirement in selector.requirements] == ["a", "m", "z"]
    assert str(selector) == "a=2,m,z=1"


def test_set_values_are_sorted_and_deduplicated() -> None:
    assert parse_label_selector("a in (y,x,y)").requirements[0].values == ("x", "y")


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("a in ()", ("",)),
        ("a in (,x)", ("", "x")),
        ("a in (x,)", ("", "x")),
        ("a in (x,,y)", ("", "x", "y")),
        ("a=", ("",)),
        ("a!=", ("",)),
    ],
)
def test_empty_values_are_allowed(text: str, values: tuple[str, ...]) -> None:
    assert parse_label_selector(text).requirements[0].values == values


def test_in_and_notin_are_ordinary_words_outside_operator_position() -> None:
    selector = parse_label_selector("in=notin,notin in (in,notin)")
    assert selector.requirements == (
        Requirement("in", "=", ("notin",)),
        Requirement("notin", "in", ("in", "notin")),
    )


def test_prefixed_keys_are_accepted() -> None:
    selector = parse_label_selector("app.kubernetes.io/name=web,example.com/tier")
    assert selector.matches({"app.kubernetes.io/name": "web", "example.com/tier": "x"})


@pytest.mark.parametrize(
    "text",
    [
        "a=b",
        "a!=b",
        "a in (x,y)",
        "a notin (x)",
        "a",
        "!a",
        "a in ()",
        "a in (,x)",
        "a=",
        "a>10",
        "a<3",
        "in=notin",
        "a!=x,a!=y",
        "example.com/k in (v1,v2),z,!y,m==n",
    ],
)
def test_string_form_parses_back_to_an_equal_selector(text: str) -> None:
    selector = parse_label_selector(text)
    assert parse_label_selector(str(selector)) == selector
    assert str(parse_label_selector(str(selector))) == str(selector)


def test_string_form_is_canonical() -> None:
    assert str(parse_label_selector(" b in ( y , x ) , a == 1 , !c ")) == "a=1,b in (x,y),!c"


def test_directly_built_selector_round_trips() -> None:
    selector = LabelSelector((Requirement("b", "notin", ("z", "y")), Requirement("a", "exists")))
    assert str(selector) == "a,b notin (y,z)"
    assert parse_label_selector(str(selector)) == selector


# ---------------------------------------------------------------------------
# Label selector strings: rejection
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (x,", "unable to parse requirement: found '', expected: ',', or identifier"),
        ("a in (", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in", "unable to parse requirement: found '' expected: '('"),
        ("a notin x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier"),
        ("=b", "found '=', expected: !, identifier, or 'end of string'"),
        ("==b", "found '==', expected: !, identifier, or 'end of string'"),
        ("(a)", "found '(', expected: !, identifier, or 'end of string'"),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
        ("a===", "unable to parse requirement: found '=', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!!a", "unable to parse requirement: found '!', expected: identifier"),
    ],
)
def test_malformed_syntax_is_rejected_with_kube_wording(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("-a", 'key: Invalid value: "-a": name part must consist of alphanumeric characters'),
        ("a-", "name part must consist of alphanumeric characters"),
        ("a" * 64, "name part must be no more than 63 characters"),
        ("/a", "prefix part must be non-empty"),
        ("a/", "name part must be non-empty"),
        ("Example.com/a", "prefix part a lowercase RFC 1123 subdomain must consist of"),
        ("a" * 254 + "/b", "prefix part must be no more than 253 characters"),
        ("a/b/c", "a qualified name must consist of alphanumeric characters"),
        ("a@b", "name part must consist of alphanumeric characters"),
        ("é", "name part must consist of alphanumeric characters"),
    ],
)
def test_invalid_label_keys_are_rejected(key: str, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(f"{key}=v")
    assert str(caught.value).startswith("unable to parse requirement: key: Invalid value: ")
    assert fragment in str(caught.value)


def test_key_error_is_reported_before_a_later_syntax_error() -> None:
    with pytest.raises(SelectorError, match=r'key: Invalid value: "-a"'):
        parse_label_selector("-a in (")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a=-b", 'values[0][a]: Invalid value: "-b": a valid label must be an empty string'),
        ("a=" + "b" * 64, "must be no more than 63 characters"),
        ("a in (ok,zz-)", 'values[1][a]: Invalid value: "zz-"'),
        ("a=b/c", 'values[0][a]: Invalid value: "b/c"'),
    ],
)
def test_invalid_label_values_are_rejected(text: str, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert str(caught.value).startswith("unable to parse requirement: ")
    assert fragment in str(caught.value)


def test_longest_valid_key_and_value_are_accepted() -> None:
    key, value = "k" * 63, "v" * 63
    assert parse_label_selector(f"{'p' * 253}/{key}={value}").matches({f"{'p' * 253}/{key}": value})


@pytest.mark.parametrize("text", ["a>b", "a<1.5", "a>", "a>99999999999999999999"])
def test_numeric_comparisons_need_an_int64(text: str) -> None:
    with pytest.raises(SelectorError, match="for 'Gt', 'Lt' operators, the value must be an integer"):
        parse_label_selector(text)


def test_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unable to parse requirement"):
        parse_label_selector("a in")


# ---------------------------------------------------------------------------
# Requirement construction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "operator", "values", "message"),
    [
        (
            "a",
            "in",
            (),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
        ),
        ("a", "=", ("x", "y"), "exact-match compatibility requires one single value"),
        ("a", "!=", (), "exact-match compatibility requires one single value"),
        ("a", "exists", ("x",), "values set must be empty for exists and does not exist"),
        ("a", "!", ("x",), "values set must be empty for exists and does not exist"),
        ("a", "gt", ("1", "2"), "for 'Gt', 'Lt' operators, exactly one value is required"),
        ("a", "~", ("x",), 'operator: Unsupported value: "~"'),
    ],
)
def test_requirement_rejects_wrong_value_counts_and_operators(
    key: str, operator: str, values: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SelectorError) as caught:
        Requirement(key, operator, values)
    assert message in str(caught.value)


def test_requirement_reports_several_problems_together() -> None:
    with pytest.raises(SelectorError) as caught:
        Requirement("-k", "in", ())
    message = str(caught.value)
    assert message.startswith('[key: Invalid value: "-k"')
    assert "values set can't be empty]" in message


def test_requirement_accepts_a_list_of_values() -> None:
    requirement = Requirement("a", "in", ["y", "x"])  # type: ignore[arg-type]
    assert requirement.values == ("x", "y")
    assert hash(requirement) == hash(Requirement("a", "in", ("x", "y")))


def test_label_key_and_value_checks_return_no_errors_for_valid_input() -> None:
    assert label_key_errors("example.com/my_key.v-1") == []
    assert label_value_errors("") == []
    assert label_value_errors("My_value.1") == []
    assert label_key_errors("") == [
        "name part must be non-empty",
        label_key_errors("-")[0],
    ]


# ---------------------------------------------------------------------------
# Label selector matching
# ---------------------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "empty": "", "count": "7"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app=web", True),
        ("app=db", False),
        ("missing=web", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=web", True),
        ("app in (db,web)", True),
        ("app in (db)", False),
        ("missing in (web)", False),
        ("app notin (db)", True),
        ("app notin (web,db)", False),
        ("missing notin (web)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("empty=", True),
        ("empty", True),
        ("missing=", False),
        ("empty in ()", True),
        ("count>6", True),
        ("count>7", False),
        ("count<8", True),
        ("count<7", False),
        ("app>1", False),
        ("missing<100", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
    ],
)
def test_selector_matches_labels_like_kube(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


def test_none_labels_behave_as_no_labels() -> None:
    assert parse_label_selector("!a,b!=c,d notin (e)").matches(None)
    assert not parse_label_selector("a").matches(None)


# ---------------------------------------------------------------------------
# metav1.LabelSelector objects
# ---------------------------------------------------------------------------


def test_none_object_selects_everything() -> None:
    # Unlike kube's LabelSelectorAsSelector (nil selects nothing): an absent spec selector means no filter.
    assert label_selector_from_object(None) == LabelSelector.everything()


@pytest.mark.parametrize(
    "obj",
    [{}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": None}, {"matchExpressions": []}],
)
def test_object_without_requirements_selects_everything(obj: dict[str, Any]) -> None:
    selector = label_selector_from_object(obj)
    assert selector.is_empty()
    assert selector.matches({"x": "y"})


def test_match_labels_and_expressions_combine() -> None:
    selector = label_selector_from_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []},
            ],
        }
    )
    assert str(selector) == "app=web,env notin (dev),!legacy,team,tier in (edge,front)"
    assert selector == parse_label_selector(str(selector))
    assert selector.matches({"app": "web", "tier": "edge", "team": "a"})
    assert not selector.matches({"app": "web", "tier": "edge", "team": "a", "legacy": "1"})
    assert not selector.matches({"app": "web", "tier": "edge", "team": "a", "env": "dev"})
    assert not selector.matches({"app": "web", "tier": "back", "team": "a"})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            {"key": "a", "operator": "In", "values": []},
            "matchExpressions[0].values: Required value: must be specified when `operator` is "
            "'In' or 'NotIn'",
        ),
        (
            {"key": "a", "operator": "NotIn"},
            "matchExpressions[0].values: Required value: must be specified when `operator` is "
            "'In' or 'NotIn'",
        ),
        (
            {"key": "a", "operator": "Exists", "values": ["x"]},
            "matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or "
            "'DoesNotExist'",
        ),
        (
            {"key": "a", "operator": "DoesNotExist", "values": ["x"]},
            "matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or "
            "'DoesNotExist'",
        ),
        (
            {"key": "a", "operator": "in", "values": ["x"]},
            'matchExpressions[0].operator: Invalid value: "in": not a valid selector operator',
        ),
        (
            {"key": "a", "values": ["x"]},
            "matchExpressions[0].operator: Invalid value: None: not a valid selector operator",
        ),
    ],
)
def test_match_expressions_are_validated(expression: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        label_selector_from_object({"matchExpressions": [expression]})
    assert str(caught.value) == message


def test_match_expression_key_and_values_are_validated() -> None:
    with pytest.raises(SelectorError) as caught:
        label_selector_from_object(
            {"matchExpressions": [{"key": "ok"}, {"key": "-bad", "operator": "In", "values": ["x", "-y"]}]}
        )
    message = str(caught.value)
    assert message.startswith("[matchExpressions[0].operator: Invalid value: None")
    assert 'matchExpressions[1].key: Invalid value: "-bad": name part must consist' in message
    assert 'matchExpressions[1].values[1]: Invalid value: "-y": a valid label must be' in message


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"matchLabels": {"-a": "b"}}, 'matchLabels: Invalid value: "-a": name part must consist'),
        ({"matchLabels": {"a": "b" * 64}}, "must be no more than 63 characters"),
        ({"matchLabels": {"a": 1}}, "matchLabels: Invalid value: 1: must be a string"),
        ({"matchLabels": ["a"]}, 'matchLabels: Invalid value: []string{"a"}: must be an object'),
        ({"matchExpressions": {"key": "a"}}, "matchExpressions: Invalid value:"),
        ({"matchExpressions": ["a"]}, 'matchExpressions[0]: Invalid value: "a": must be an object'),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]},
            'matchExpressions[0].values: Invalid value: "x": must be a list of strings',
        ),
    ],
)
def test_malformed_selector_objects_are_rejected(obj: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        label_selector_from_object(obj)
    assert fragment in str(caught.value)


def test_match_labels_with_empty_value_select_empty_labels() -> None:
    selector = label_selector_from_object({"matchLabels": {"a": ""}})
    assert selector.matches({"a": ""})
    assert not selector.matches({})


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

POD_FIELDS = SELECTABLE_FIELDS[("", "pods")]


def test_field_selector_parses_each_operator() -> None:
    selector = parse_field_selector("metadata.name=a,metadata.namespace!=b,status.phase==Running", POD_FIELDS)
    assert set(selector.requirements) == {
        FieldRequirement("metadata.name", "=", "a"),
        FieldRequirement("metadata.namespace", "!=", "b"),
        FieldRequirement("status.phase", "=", "Running"),
    }


@pytest.mark.parametrize("text", ["", ",", ",,"])
def test_empty_field_selector_selects_everything(text: str) -> None:
    selector = parse_field_selector(text, ())
    assert selector.is_empty()
    assert selector == FieldSelector.everything()
    assert selector.matches({"metadata.name": "x"})


def test_metadata_fields_are_always_supported() -> None:
    selector = parse_field_selector("metadata.name=a,metadata.namespace=", ())
    assert selector.matches({"metadata.name": "a", "metadata.namespace": ""})


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("spec.foo=x", "spec.foo"),
        ("metadata.name=a,spec.foo=x", "spec.foo"),
        ("=x", ""),
        # Whitespace is part of the field name, as in kube.
        ("metadata.name =x", "metadata.name "),
    ],
)
def test_unsupported_fields_are_rejected(text: str, field: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text, POD_FIELDS)
    assert str(caught.value) == f"field label not supported: {field}"


def test_fields_supported_by_another_resource_are_rejected() -> None:
    with pytest.raises(SelectorError, match=r"^field label not supported: spec.nodeName$"):
        parse_field_selector("spec.nodeName=n1", SELECTABLE_FIELDS[("", "secrets")])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r"metadata.name=a\,b", "a,b"),
        (r"metadata.name=a\=b", "a=b"),
        (r"metadata.name=a\\b", "a\\b"),
        (r"metadata.name=\\\,\=", "\\,="),
        ("metadata.name=a!b", "a!b"),
        ("metadata.name=", ""),
    ],
)
def test_field_values_unescape_like_kube(text: str, value: str) -> None:
    (requirement,) = parse_field_selector(text, ()).requirements
    assert requirement.value == value


def test_escaped_comma_does_not_split_terms() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b,metadata.namespace=c", ())
    assert selector.matches({"metadata.name": "a,b", "metadata.namespace": "c"})
    # Kept in one term by the escaped comma, the value then holds an unescaped '='.
    with pytest.raises(SelectorError, match="unescaped character in value: ="):
        parse_field_selector(r"metadata.name=a\,metadata.namespace=b", ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (r"metadata.name=a\!b", r"invalid field selector: invalid escape sequence: \!"),
        (r"metadata.name=a\x", r"invalid field selector: invalid escape sequence: \x"),
        ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: ="),
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,metadata.name", "invalid selector: 'a=b,metadata.name'; can't understand 'metadata.name'"),
    ],
)
def test_malformed_field_selectors_are_rejected(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text, ())
    assert str(caught.value) == message


def test_syntax_errors_win_over_unsupported_fields() -> None:
    with pytest.raises(SelectorError, match="invalid escape sequence"):
        parse_field_selector(r"spec.foo=x,metadata.name=\q", ())


def test_field_selector_round_trips_through_its_string_form() -> None:
    selector = parse_field_selector(r"status.phase!=Failed,metadata.name==a\,b\=c\\d", POD_FIELDS)
    assert str(selector) == r"metadata.name=a\,b\=c\\d,status.phase!=Failed"
    assert parse_field_selector(str(selector), POD_FIELDS) == selector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=web", True),
        ("metadata.name=db", False),
        ("metadata.name!=db", True),
        ("metadata.name!=web", False),
        ("spec.nodeName=", True),
        ("spec.nodeName!=", False),
        ("status.phase=Running,metadata.namespace=prod", True),
        ("status.phase=Running,metadata.namespace=dev", False),
    ],
)
def test_field_selector_matches_field_sets(text: str, expected: bool) -> None:
    fields = {"metadata.name": "web", "metadata.namespace": "prod", "status.phase": "Running"}
    assert parse_field_selector(text, POD_FIELDS).matches(fields) is expected


def test_field_requirement_rejects_unknown_operators() -> None:
    with pytest.raises(SelectorError, match="invalid field selector operator"):
        FieldRequirement("metadata.name", "in", "x")


# ---------------------------------------------------------------------------
# Object field sets
# ---------------------------------------------------------------------------


def test_object_fields_always_include_name_and_namespace() -> None:
    assert object_fields({"metadata": {"name": "n1"}}) == {"metadata.name": "n1", "metadata.namespace": ""}
    assert object_fields({"metadata": {"name": "p", "namespace": "ns"}}) == {
        "metadata.name": "p",
        "metadata.namespace": "ns",
    }
    assert object_fields({}) == {"metadata.name": "", "metadata.namespace": ""}


def test_pod_fields_are_read_from_the_object() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "node-1", "hostNetwork": True, "restartPolicy": "Always"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}]},
    }
    fields = object_fields(pod, POD_FIELDS)
    assert fields["spec.nodeName"] == "node-1"
    assert fields["spec.hostNetwork"] == "true"
    assert fields["spec.restartPolicy"] == "Always"
    assert fields["spec.schedulerName"] == ""
    assert fields["status.phase"] == "Running"
    assert fields["status.podIP"] == "10.0.0.5"
    assert fields["status.nominatedNodeName"] == ""
    assert parse_field_selector("spec.nodeName=node-1,spec.hostNetwork=true", POD_FIELDS).matches(fields)


def test_unset_booleans_and_counts_read_as_go_zero_values() -> None:
    assert object_fields({}, ["spec.hostNetwork"])["spec.hostNetwork"] == "false"
    assert (
        object_fields({"spec": {"hostNetwork": False}}, ["spec.hostNetwork"])["spec.hostNetwork"] == "false"
    )
    assert object_fields({}, ["spec.unschedulable"])["spec.unschedulable"] == "false"
    assert (
        object_fields({"spec": {"unschedulable": True}}, ["spec.unschedulable"])["spec.unschedulable"]
        == "true"
    )
    assert object_fields({}, ["status.replicas"])["status.replicas"] == "0"
    assert object_fields({"status": {"replicas": 3}}, ["status.replicas"])["status.replicas"] == "3"


def test_job_successful_field_reads_the_succeeded_count() -> None:
    extra = SELECTABLE_FIELDS[("batch", "jobs")]
    assert object_fields({"status": {"succeeded": 2}}, extra)["status.successful"] == "2"
    assert object_fields({}, extra)["status.successful"] == "0"


def test_event_fields_include_source_fallback() -> None:
    extra = SELECTABLE_FIELDS[("", "events")]
    event = {
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": "p", "uid": "u1"},
        "reason": "Started",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
    }
    fields = object_fields(event, extra)
    assert fields["involvedObject.kind"] == "Pod"
    assert fields["involvedObject.fieldPath"] == ""
    assert fields["source"] == "kubelet"
    assert fields["type"] == "Normal"
    new_style = {"metadata": {"name": "e"}, "reportingComponent": "controller-x"}
    assert object_fields(new_style, extra)["source"] == "controller-x"
    assert object_fields(new_style, extra)["reportingComponent"] == "controller-x"


def test_arbitrary_dotted_paths_read_scalars_and_ignore_objects() -> None:
    obj = {"metadata": {"name": "x"}, "spec": {"size": 2.0, "ratio": 0.5, "nested": {"a": 1}, "flag": None}}
    fields = object_fields(
        obj, ["spec.size", "spec.ratio", "spec.nested", "spec.flag", "spec.missing.deeper"]
    )
    assert fields["spec.size"] == "2"
    assert fields["spec.ratio"] == "0.5"
    assert fields["spec.nested"] == ""
    assert fields["spec.flag"] == ""
    assert fields["spec.missing.deeper"] == ""


def test_selectable_fields_cover_kube_resources() -> None:
    assert SELECTABLE_FIELDS[("", "secrets")] == ("type",)
    assert SELECTABLE_FIELDS[("", "namespaces")] == ("status.phase",)
    assert SELECTABLE_FIELDS[("", "nodes")] == ("spec.unschedulable",)
    assert SELECTABLE_FIELDS[("apps", "replicasets")] == ("status.replicas",)
    assert SELECTABLE_FIELDS[("", "replicationcontrollers")] == ("status.replicas",)
    assert SELECTABLE_FIELDS[("certificates.k8s.io", "certificatesigningrequests")] == ("spec.signerName",)
    assert len(SELECTABLE_FIELDS[("", "events")]) == 11
    assert selectable_fields("", "configmaps") == ("metadata.name", "metadata.namespace")
    assert selectable_fields("", "secrets") == ("metadata.name", "metadata.namespace", "type")


def test_secret_type_selects_secrets_end_to_end() -> None:
    secret = {"metadata": {"name": "s", "namespace": "ns"}, "type": "kubernetes.io/tls"}
    fields = object_fields(secret, selectable_fields("", "secrets"))
    selector = parse_field_selector(
        "type=kubernetes.io/tls,metadata.namespace=ns", selectable_fields("", "secrets")
    )
    assert selector.matches(fields)
    assert not parse_field_selector("type!=kubernetes.io/tls", ("type",)).matches(fields)
