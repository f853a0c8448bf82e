"""Label and field selectors, parsed and matched the way kube-apiserver does it.

Two consumers need the same semantics. The sandbox API server answers
``?labelSelector=`` and ``?fieldSelector=`` and must accept, reject and match
exactly what a real kube-apiserver would, or clients tested against it break on
real clusters. Backup filtering evaluates Velero's ``--selector`` and
``--or-selector`` and the LabelSelector objects in Backup specs. With a single
implementation, a backup rehearsed against the sandbox selects the same objects
it selects on a real cluster.

The grammar, the canonical string form and the error wording follow
k8s.io/apimachinery so that users see the messages they already know from
kubectl and Velero; the code is an independent implementation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final


class SelectorError(ValueError):
    """A selector string or object is malformed, or names a field that cannot be selected."""


# Label requirement operators. The strings are kube's selection.Operator values,
# so they read the same in logs and errors as they do in Go.
EQUALS: Final = "="
NOT_EQUALS: Final = "!="
IN: Final = "in"
NOT_IN: Final = "notin"
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
# kube-apiserver also accepts 'key>N' and 'key<N' in label selector strings; the
# sandbox must not reject what a real server accepts.
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

LABEL_OPERATORS: Final = frozenset(
    {EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN}
)
_SET_OPERATORS: Final = frozenset({IN, NOT_IN})
_SINGLE_VALUE_OPERATORS: Final = frozenset({EQUALS, NOT_EQUALS})
_UNARY_OPERATORS: Final = frozenset({EXISTS, DOES_NOT_EXIST})
_NUMERIC_OPERATORS: Final = frozenset({GREATER_THAN, LESS_THAN})

# ---------------------------------------------------------------------------
# Validation of label keys and values (kube's IsQualifiedName / IsValidLabelValue)
# ---------------------------------------------------------------------------

_NAME_MAX_BYTES: Final = 63
_PREFIX_MAX_BYTES: Final = 253
_NAME_RE: Final = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN_RE: Final = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_INT64_RE: Final = re.compile(r"[+-]?[0-9]+")

_NAME_RULE: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_RULE: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_SUBDOMAIN_RULE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _byte_length(text: str) -> int:
    # Go measures string length in UTF-8 bytes; counting code points would let
    # a long non-ASCII name escape the length message kube prints.
    return len(text.encode("utf-8", "surrogatepass"))


def _max_length(limit: int) -> str:
    return f"must be no more than {limit} characters"


def label_key_errors(key: str) -> list[str]:
    """Why `key` is not a valid label key (``[prefix/]name``); empty when it is valid."""
    parts = key.split("/")
    if len(parts) > 2:
        return ["a qualified name " + _NAME_RULE]
    errors: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if _byte_length(prefix) > _PREFIX_MAX_BYTES:
                errors.append("prefix part " + _max_length(_PREFIX_MAX_BYTES))
            if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
                errors.append("prefix part " + _SUBDOMAIN_RULE)
    if not name:
        errors.append("name part must be non-empty")
    elif _byte_length(name) > _NAME_MAX_BYTES:
        errors.append("name part " + _max_length(_NAME_MAX_BYTES))
    # fullmatch, not match with '$': Python's '$' would accept a trailing newline.
    if not _NAME_RE.fullmatch(name):
        errors.append("name part " + _NAME_RULE)
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why `value` is not a valid label value; empty when it is valid (the empty string is)."""
    errors: list[str] = []
    if _byte_length(value) > _NAME_MAX_BYTES:
        errors.append(_max_length(_NAME_MAX_BYTES))
    if value and not _NAME_RE.fullmatch(value):
        errors.append(_VALUE_RULE)
    return errors


def _go_repr(value: object) -> str:
    """Render a bad value the way kube's field errors do (%q for strings, %#v for slices)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list) and all(isinstance(item, str) for item in value):
        return "[]string{" + ", ".join(json.dumps(item, ensure_ascii=False) for item in value) + "}"
    return repr(value)


def _invalid(path: str, value: object, detail: str) -> str:
    return f"{path}: Invalid value: {_go_repr(value)}: {detail}"


def _aggregate(errors: Sequence[str]) -> str:
    # kube's utilerrors.Aggregate prints a lone error bare and several in brackets.
    if len(errors) == 1:
        return errors[0]
    return "[" + ", ".join(errors) + "]"


def _is_int64(text: str) -> bool:
    # int() would also accept '1_000' and surrounding spaces, which Go's ParseInt rejects.
    return _INT64_RE.fullmatch(text) is not None and -(2**63) <= int(text) < 2**63


def _requirement_errors(key: str, operator: str, values: tuple[str, ...]) -> list[str]:
    errors: list[str] = []
    key_errors = label_key_errors(key)
    if key_errors:
        errors.append(_invalid("key", key, "; ".join(key_errors)))
    if operator in _SET_OPERATORS:
        if not values:
            errors.append(
                _invalid("values", values, "for 'in', 'notin' operators, values set can't be empty")
            )
    elif operator in _SINGLE_VALUE_OPERATORS:
        if len(values) != 1:
            errors.append(_invalid("values", values, "exact-match compatibility requires one single value"))
    elif operator in _UNARY_OPERATORS:
        if values:
            errors.append(
                _invalid("values", values, "values set must be empty for exists and does not exist")
            )
    elif operator in _NUMERIC_OPERATORS:
        if len(values) != 1:
            errors.append(
                _invalid("values", values, "for 'Gt', 'Lt' operators, exactly one value is required")
            )
        errors.extend(
            _invalid(f"values[{index}]", value, "for 'Gt', 'Lt' operators, the value must be an integer")
            for index, value in enumerate(values)
            if not _is_int64(value)
        )
    else:
        supported = ", ".join(json.dumps(op) for op in sorted(LABEL_OPERATORS))
        errors.append(f"operator: Unsupported value: {_go_repr(operator)}: supported values: {supported}")
    for index, value in enumerate(values):
        value_errors = label_value_errors(value)
        if value_errors:
            errors.append(_invalid(f"values[{index}][{key}]", value, "; ".join(value_errors)))
    return errors


# ---------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One condition on one label key; construction validates it and normalises it.

    ``==`` becomes ``=`` and the values of ``in``/``notin`` become a sorted set, so
    two requirements that select the same labels compare equal.
    """

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        operator = EQUALS if self.operator == "==" else self.operator
        # Callers building requirements from JSON pass lists; keep the dataclass hashable.
        values = tuple(self.values)
        if operator in _SET_OPERATORS:
            values = tuple(sorted(set(values)))
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "values", values)
        errors = _requirement_errors(self.key, operator, values)
        if errors:
            raise SelectorError(_aggregate(errors))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfies this requirement (kube's Requirement.Matches)."""
        operator = self.operator
        if operator == EXISTS:
            return self.key in labels
        if operator == DOES_NOT_EXIST:
            return self.key not in labels
        present = self.key in labels
        if operator in (EQUALS, IN):
            return present and labels[self.key] in self.values
        if operator in (NOT_EQUALS, NOT_IN):
            # A missing label is "not equal" to everything: '!=' also selects unlabelled objects.
            return not present or labels[self.key] not in self.values
        if not present or not _is_int64(labels[self.key]):
            return False
        actual, bound = int(labels[self.key]), int(self.values[0])
        return actual > bound if operator == GREATER_THAN else actual < bound

    def __str__(self) -> str:
        operator = self.operator
        if operator == EXISTS:
            return self.key
        if operator == DOES_NOT_EXIST:
            return "!" + self.key
        if operator in _SET_OPERATORS:
            return f"{self.key} {operator} ({','.join(self.values)})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(operator, operator)
        return f"{self.key}{symbol}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; no requirements selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        # kube keeps requirements ordered by key so the string form is deterministic;
        # a stable sort also keeps same-key requirements in the order given, which
        # makes str() round trips compare equal.
        ordered = tuple(sorted(self.requirements, key=lambda requirement: requirement.key))
        object.__setattr__(self, "requirements", ordered)

    @classmethod
    def everything(cls) -> LabelSelector:
        """The selector that matches every object, labelled or not."""
        return cls(())

    def is_empty(self) -> bool:
        """Whether this selector has no requirements (and so matches everything)."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether every requirement holds; ``None`` labels are treated as no labels."""
        present: Mapping[str, str] = labels if labels is not None else {}
        return all(requirement.matches(present) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


# Lexer: kube splits a selector into identifiers and a few symbols; whitespace
# only separates tokens. Only these four characters count as whitespace there.
_WHITESPACE: Final = frozenset(" \t\r\n")
_SPECIAL_CHARACTERS: Final = frozenset("=!(),<>")
_TWO_CHARACTER_SYMBOLS: Final = frozenset({"==", "!="})
_KEYWORDS: Final = frozenset({IN, NOT_IN})
_IDENTIFIER: Final = "identifier"
_END: Final = "end"

_Token = tuple[str, str]  # (kind, literal); kind is a symbol, a keyword, _IDENTIFIER or _END


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position, length = 0, len(text)
    while True:
        while position < length and text[position] in _WHITESPACE:
            position += 1
        if position >= length:
            tokens.append((_END, ""))
            return tokens
        if text[position] in _SPECIAL_CHARACTERS:
            pair = text[position : position + 2]
            symbol = pair if pair in _TWO_CHARACTER_SYMBOLS else text[position]
            tokens.append((symbol, symbol))
            position += len(symbol)
            continue
        start = position
        while (
            position < length
            and text[position] not in _WHITESPACE
            and text[position] not in _SPECIAL_CHARACTERS
        ):
            position += 1
        word = text[start:position]
        tokens.append((word if word in _KEYWORDS else _IDENTIFIER, word))


_BINARY_OPERATOR_TOKENS: Final[Mapping[str, str]] = MappingProxyType(
    {IN: IN, NOT_IN: NOT_IN, "=": EQUALS, "==": EQUALS, "!=": NOT_EQUALS, ">": GREATER_THAN, "<": LESS_THAN}
)
_EXPECTED_OPERATORS: Final = "in, notin, =, ==, !=, gt, lt"


class _LabelSelectorParser:
    """Recursive descent over the token list; error texts are kube's."""

    def __init__(self, text: str) -> None:
        self._tokens = _tokenize(text)
        self._position = 0

    def _peek(self) -> _Token:
        return self._as_value(self._tokens[self._position])

    def _take_raw(self) -> _Token:
        token = self._tokens[self._position]
        if token[0] != _END:
            self._position += 1
        return token

    def _take(self) -> _Token:
        return self._as_value(self._take_raw())

    @staticmethod
    def _as_value(token: _Token) -> _Token:
        # 'in' and 'notin' are keywords only where an operator is expected, so
        # they remain usable as label keys and values.
        if token[0] in _KEYWORDS:
            return (_IDENTIFIER, token[1])
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._peek()
            if kind == _END:
                return requirements
            if kind not in (_IDENTIFIER, "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except SelectorError as error:
                raise SelectorError(f"unable to parse requirement: {error}") from error
            kind, literal = self._take()
            if kind == _END:
                return requirements
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self._peek()
            if kind not in (_IDENTIFIER, "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        kind, literal = self._take()
        negated = kind == "!"
        if negated:
            kind, literal = self._take()
        if kind != _IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        key = literal
        # The key is checked before the operator so that 'bad key in (' blames the key.
        key_errors = label_key_errors(key)
        if key_errors:
            raise SelectorError(_invalid("key", key, "; ".join(key_errors)))
        # After '!' kube stops here even if more follows; the caller then reports the leftover.
        if negated:
            return Requirement(key, DOES_NOT_EXIST, ())
        if self._peek()[0] in (_END, ","):
            return Requirement(key, EXISTS, ())
        kind, literal = self._take_raw()
        operator = _BINARY_OPERATOR_TOKENS.get(kind)
        if operator is None:
            raise SelectorError(f"found '{literal}', expected: {_EXPECTED_OPERATORS}")
        if operator in _SET_OPERATORS:
            return Requirement(key, operator, self._value_list())
        return Requirement(key, operator, (self._single_value(),))

    def _single_value(self) -> str:
        kind, literal = self._peek()
        if kind in (_END, ","):
            return ""
        kind, literal = self._take()
        if kind != _IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return literal

    def _value_list(self) -> tuple[str, ...]:
        kind, literal = self._take()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self._peek()
        if kind == ")":
            self._take()
            return ("",)
        if kind not in (_IDENTIFIER, ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self._list_items()
        self._take()  # the ')' that ended the list
        return tuple(values)

    def _list_items(self) -> list[str]:
        # Empty items are legal ('(,a)', '(a,)' hold the empty string). kube's
        # state machine accepts some runs of commas and rejects others ('(,,)');
        # this loop reproduces it, since the sandbox must agree on every input.
        values: list[str] = []
        while True:
            kind, literal = self._take()
            if kind == _IDENTIFIER:
                values.append(literal)
                following, following_literal = self._peek()
                if following == ")":
                    return values
                if following != ",":
                    raise SelectorError(f"found '{following_literal}', expected: ',' or ')'")
            elif kind == ",":
                if not values:
                    values.append("")
                following = self._peek()[0]
                if following == ")":
                    values.append("")
                    return values
                if following == ",":
                    self._take()
                    values.append("")
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse kube's label selector string form (``a=b,c in (x,y),!d``).

    An empty (or all-whitespace) string selects everything.
    """
    return LabelSelector(tuple(_LabelSelectorParser(text).parse()))


_EXPRESSION_OPERATORS: Final[Mapping[str, str]] = MappingProxyType(
    {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
)


def _label_name_errors(path: str, key: object) -> list[str]:
    if not isinstance(key, str):
        return [_invalid(path, key, "must be a string")]
    return [_invalid(path, key, message) for message in label_key_errors(key)]


def _label_value_field_errors(path: str, value: object) -> list[str]:
    if not isinstance(value, str):
        return [_invalid(path, value, "must be a string")]
    return [_invalid(path, value, message) for message in label_value_errors(value)]


def _expression_errors(path: str, expression: object) -> tuple[list[str], Requirement | None]:
    if not isinstance(expression, Mapping):
        return [_invalid(path, expression, "must be an object")], None
    key = expression.get("key")
    operator_name = expression.get("operator")
    raw_values = expression.get("values")
    values: list[object] = []
    errors: list[str] = []
    if raw_values is not None:
        if isinstance(raw_values, list | tuple):
            values = list(raw_values)
        else:
            errors.append(_invalid(f"{path}.values", raw_values, "must be a list of strings"))
    operator = _EXPRESSION_OPERATORS.get(operator_name) if isinstance(operator_name, str) else None
    if operator in _SET_OPERATORS and not values:
        errors.append(f"{path}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'")
    elif operator in _UNARY_OPERATORS and values:
        errors.append(
            f"{path}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        )
    elif operator is None:
        errors.append(_invalid(f"{path}.operator", operator_name, "not a valid selector operator"))
    errors.extend(_label_name_errors(f"{path}.key", key))
    for index, value in enumerate(values):
        errors.extend(_label_value_field_errors(f"{path}.values[{index}]", value))
    if errors or operator is None or not isinstance(key, str):
        return errors, None
    return [], Requirement(key, operator, tuple(str(value) for value in values))


def label_selector_from_object(obj: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a metav1.LabelSelector dict (``matchLabels`` + ``matchExpressions``).

    ``None`` selects everything. This deliberately differs from kube's
    LabelSelectorAsSelector, where a nil selector selects nothing: callers here
    pass optional spec fields (Velero's ``labelSelector``, ``orLabelSelectors``
    entries), and an absent selector there means "do not filter". An object
    with no requirements also selects everything, as in kube.
    """
    if obj is None:
        return LabelSelector.everything()
    if not isinstance(obj, Mapping):
        raise SelectorError(_invalid("labelSelector", obj, "must be an object"))
    errors: list[str] = []
    requirements: list[Requirement] = []

    match_labels = obj.get("matchLabels")
    if match_labels is None:
        match_labels = {}
    if not isinstance(match_labels, Mapping):
        errors.append(_invalid("matchLabels", match_labels, "must be an object"))
        match_labels = {}
    for key, value in match_labels.items():
        label_errors = _label_name_errors("matchLabels", key) + _label_value_field_errors(
            "matchLabels", value
        )
        if label_errors:
            errors.extend(label_errors)
        else:
            requirements.append(Requirement(key, EQUALS, (value,)))

    match_expressions = obj.get("matchExpressions")
    if match_expressions is None:
        match_expressions = []
    if not isinstance(match_expressions, list | tuple):
        errors.append(_invalid("matchExpressions", match_expressions, "must be a list"))
        match_expressions = []
    for index, expression in enumerate(match_expressions):
        expression_errors, requirement = _expression_errors(f"matchExpressions[{index}]", expression)
        errors.extend(expression_errors)
        if requirement is not None:
            requirements.append(requirement)

    if errors:
        raise SelectorError(_aggregate(errors))
    return LabelSelector(tuple(requirements))


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

# Every resource can be selected by name and namespace, whatever else it supports.
_META_FIELDS: Final = ("metadata.name", "metadata.namespace")
# Checked in this order at each position so that '==' is not read as '=' followed by '='.
_FIELD_OPERATORS: Final = ("!=", "==", "=")


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(raw: str) -> str:
    characters: list[str] = []
    escaping = False
    for character in raw:
        if escaping:
            # kube recognises exactly these three escapes; anything else (even '\!') is an error.
            if character not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{character}")
            characters.append(character)
            escaping = False
        elif character == "\\":
            escaping = True
        elif character in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {character}")
        else:
            characters.append(character)
    if escaping:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(characters)


def _split_field_terms(text: str) -> list[str]:
    # An escaped comma belongs to the value, so splitting must track backslashes.
    terms: list[str] = []
    start = 0
    escaping = False
    for index, character in enumerate(text):
        if escaping:
            escaping = False
        elif character == "\\":
            escaping = True
        elif character == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    # Field names cannot be escaped, so the first operator anywhere in the term splits it.
    for index in range(len(term)):
        for operator in _FIELD_OPERATORS:
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator) :]
    return None


@dataclass(frozen=True)
class FieldRequirement:
    """``field=value`` or ``field!=value``; ``==`` is normalised to ``=``."""

    field: str
    operator: str
    value: str

    def __post_init__(self) -> None:
        operator = EQUALS if self.operator == "==" else self.operator
        if operator not in (EQUALS, NOT_EQUALS):
            raise SelectorError(f"invalid field selector operator: {_go_repr(operator)}")
        object.__setattr__(self, "operator", operator)

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Compare against `fields`; a field the object lacks reads as the empty string, as in kube."""
        actual = fields.get(self.field, "")
        return actual == self.value if self.operator == EQUALS else actual != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements; no requirements selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def __post_init__(self) -> None:
        # kube sorts the terms of a field selector; a fixed order also makes equal
        # selectors compare equal however they were written.
        ordered = tuple(sorted(self.requirements, key=str))
        object.__setattr__(self, "requirements", ordered)

    @classmethod
    def everything(cls) -> FieldSelector:
        """The selector that matches every object."""
        return cls(())

    def is_empty(self) -> bool:
        """Whether this selector has no requirements (and so matches everything)."""
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether every requirement holds for the field set from :func:`object_fields`."""
        return all(requirement.matches(fields) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


def parse_field_selector(text: str, supported: Collection[str]) -> FieldSelector:
    """Parse kube's field selector string form (``metadata.name=x,status.phase!=Running``).

    `supported` lists the fields the resource allows besides ``metadata.name`` and
    ``metadata.namespace``, which are always allowed. Whitespace is significant,
    as in kube: ``metadata.name = x`` names the field ``'metadata.name '``.
    """
    requirements: list[FieldRequirement] = []
    # Terms are handled in sorted order, as kube does, so that the same error is
    # reported first when a selector has several problems.
    for term in sorted(_split_field_terms(text)):
        if not term:
            continue
        parts = _split_field_term(term)
        if parts is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field_name, operator, raw_value = parts
        requirements.append(FieldRequirement(field_name, operator, _unescape_field_value(raw_value)))
    allowed = set(supported).union(_META_FIELDS)
    for requirement in requirements:
        if requirement.field not in allowed:
            raise SelectorError(f"field label not supported: {requirement.field}")
    return FieldSelector(tuple(requirements))


@dataclass(frozen=True)
class _FieldSource:
    """Where kube reads a selectable field from, and what it reports when unset."""

    paths: tuple[str, ...]
    default: str = ""


# Fields whose kube value is not simply "the dotted path, or '' when absent".
_FIELD_SOURCES: Final[Mapping[str, _FieldSource]] = MappingProxyType(
    {
        # Go formats unset booleans and integers as their zero value, not as "".
        "spec.hostNetwork": _FieldSource(("spec.hostNetwork",), "false"),
        "spec.unschedulable": _FieldSource(("spec.unschedulable",), "false"),
        "status.replicas": _FieldSource(("status.replicas",), "0"),
        # Jobs expose the succeeded count under the name 'status.successful'.
        "status.successful": _FieldSource(("status.succeeded",), "0"),
        "status.podIP": _FieldSource(("status.podIP", "status.podIPs.0.ip")),
        # Events written through events.k8s.io have no source component; kube
        # falls back to the reporting controller for them.
        "source": _FieldSource(("source.component", "reportingComponent")),
    }
)


def _render_scalar(value: object) -> str | None:
    # bool before int: bool is an int subclass, and Go prints it as true/false.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    # Objects and lists are never selectable in kube; treat them as absent.
    return None


def _read_path(obj: Mapping[str, Any], path: str) -> str | None:
    current: object = obj
    for segment in path.split("."):
        if isinstance(current, Mapping):
            if segment not in current:
                return None
            current = current[segment]
        elif (
            isinstance(current, list)
            and segment.isascii()
            and segment.isdigit()
            and int(segment) < len(current)
        ):
            current = current[int(segment)]
        else:
            return None
    return _render_scalar(current)


def _read_field(obj: Mapping[str, Any], name: str) -> str:
    source = _FIELD_SOURCES.get(name) or _FieldSource((name,))
    for path in source.paths:
        value = _read_path(obj, path)
        if value:
            return value
    return source.default


def object_fields(obj: Mapping[str, Any], extra: Collection[str] = ()) -> dict[str, str]:
    """The field set a field selector is matched against.

    Always ``metadata.name`` and ``metadata.namespace`` (empty for cluster-scoped
    objects), plus each dotted path in `extra` read from the object. A missing
    field reads as ``""``, except where kube reports a Go zero value
    (``spec.hostNetwork``/``spec.unschedulable`` -> ``false``, ``status.replicas``
    and ``status.successful`` -> ``0``); booleans render as ``true``/``false``.
    """
    fields = {meta_field: _read_field(obj, meta_field) for meta_field in _META_FIELDS}
    for name in extra:
        fields[name] = _read_field(obj, name)
    return fields


def _freeze(
    table: Iterable[tuple[tuple[str, str], tuple[str, ...]]],
) -> Mapping[tuple[str, str], tuple[str, ...]]:
    return MappingProxyType(dict(table))


SELECTABLE_FIELDS: Final[Mapping[tuple[str, str], tuple[str, ...]]] = _freeze(
    [
        (
            ("", "pods"),
            (
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ),
        ),
        (("", "secrets"), ("type",)),
        (("", "namespaces"), ("status.phase",)),
        (("", "nodes"), ("spec.unschedulable",)),
        (
            ("", "events"),
            (
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ),
        ),
        (("", "replicationcontrollers"), ("status.replicas",)),
        (("apps", "replicasets"), ("status.replicas",)),
        (("batch", "jobs"), ("status.successful",)),
        (("certificates.k8s.io", "certificatesigningrequests"), ("spec.signerName",)),
    ]
)


def selectable_fields(group: str, resource: str) -> tuple[str, ...]:
    """Every field kube-apiserver lets a field selector name for `resource` in `group`."""
    return _META_FIELDS + SELECTABLE_FIELDS.get((group, resource), ())
