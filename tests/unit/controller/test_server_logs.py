"""The server's logs: one JSON object per line with logrus' level names, and no secrets in them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from strongroom.controller import logs
from strongroom.controller.logs import (
    FATAL,
    LOG_LEVELS,
    PANIC,
    TRACE,
    configure_logging,
    current_level,
    parse_level,
    register_secret,
    set_level,
)
from strongroom.errors import UsageError


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The server's logging installed on a buffer; the process's logging put back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in ("aiohttp.access", "kopf.objects")}
    buffer = io.StringIO()
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)
        logs._forget_secrets()


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_each_record_is_one_json_object_with_time_level_logger_and_message(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("strongroom.controller.backup").info("backup %s started", "b1")

    [line] = lines(stream)
    assert line["level"] == "info"
    assert line["msg"] == "backup b1 started"
    assert line["logger"] == "strongroom.controller.backup"
    assert line["time"].endswith("Z")
    assert datetime.fromisoformat(line["time"]).utcoffset() is not None
    assert line["logSource"].endswith(".py:" + line["logSource"].rsplit(":", 1)[1])
    assert "\n" not in stream.getvalue().rstrip("\n")


def test_extra_fields_become_top_level_keys(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("strongroom.test").info(
        "done", extra={"backup": "b1", "controller": "backup", "items": 3, "level": "clash"}
    )

    [line] = lines(stream)
    assert line["backup"] == "b1"
    assert line["controller"] == "backup"
    assert line["items"] == 3
    # A field named like one of ours does not overwrite it; it is kept under another name.
    assert line["level"] == "info"
    assert line["fields.level"] == "clash"


def test_an_exception_becomes_an_error_field_with_its_traceback(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    try:
        raise ValueError("bucket is gone")
    except ValueError:
        logging.getLogger("strongroom.test").exception("validation failed", extra={"location": "default"})

    [line] = lines(stream)
    assert line["level"] == "error"
    assert line["msg"] == "validation failed"
    assert line["error"] == "bucket is gone"
    assert line["error.type"] == "builtins.ValueError"
    assert "Traceback" in line["traceback"]
    assert "raise ValueError" in line["traceback"]
    assert line["location"] == "default"


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("trace", TRACE),
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
        ("fatal", FATAL),
        ("panic", PANIC),
        ("WARN", logging.WARNING),
        ("Info", logging.INFO),
    ],
)
def test_parse_level_knows_the_logrus_levels(name: str, level: int) -> None:
    assert parse_level(name) == level


def test_levels_are_ordered_from_trace_to_panic() -> None:
    numbers = [parse_level(name) for name in LOG_LEVELS]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(LOG_LEVELS)
    assert TRACE < logging.DEBUG


def test_an_unknown_level_is_a_usage_error_listing_the_valid_ones() -> None:
    with pytest.raises(UsageError) as caught:
        parse_level("verbose")
    assert "verbose" in caught.value.message
    assert caught.value.hint is not None
    for name in LOG_LEVELS:
        assert name in caught.value.hint


def test_records_below_the_level_are_dropped_and_trace_shows_at_trace(stream: io.StringIO) -> None:
    configure_logging("debug", "json", stream)
    log = logging.getLogger("strongroom.test")
    log.log(TRACE, "hidden")
    log.debug("shown")
    set_level("trace")
    log.log(TRACE, "now shown")

    assert [(line["level"], line["msg"]) for line in lines(stream)] == [
        ("debug", "shown"),
        ("trace", "now shown"),
    ]


def test_fatal_and_panic_are_named_as_logrus_names_them(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    log = logging.getLogger("strongroom.test")
    log.critical("critical")
    log.log(FATAL, "fatal")
    log.log(PANIC, "panic")

    assert [line["level"] for line in lines(stream)] == ["fatal", "fatal", "panic"]


def test_set_level_changes_what_is_logged_at_run_time(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    log = logging.getLogger("strongroom.test")
    set_level("error")
    log.warning("dropped")
    log.error("kept")
    assert current_level() == "error"
    with pytest.raises(UsageError):
        set_level("loud")
    assert current_level() == "error"

    assert [line["msg"] for line in lines(stream)] == ["kept"]


def test_probe_access_lines_and_kopf_object_chatter_stay_quiet_at_info(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("aiohttp.access").info("GET /healthz 200")
    logging.getLogger("kopf.objects").info("Handler 'reconcile' succeeded.")
    logging.getLogger("kopf.objects").warning("Handler 'reconcile' failed temporarily.")

    assert [line["msg"] for line in lines(stream)] == ["Handler 'reconcile' failed temporarily."]

    set_level("debug")
    logging.getLogger("kopf.objects").info("Handler 'reconcile' succeeded.")
    logging.getLogger("aiohttp.access").info("GET /healthz 200")
    assert [line["msg"] for line in lines(stream)][1:] == ["Handler 'reconcile' succeeded."]


def test_kopf_object_references_become_an_object_field(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    ref = {"apiVersion": "velero.io/v1", "kind": "Backup", "name": "b1", "namespace": "velero"}
    logging.getLogger("kopf.objects").warning("retrying", extra={"k8s_ref": ref, "k8s_skip": False})

    [line] = lines(stream)
    assert line["object"] == ref
    assert "k8s_ref" not in line
    assert "k8s_skip" not in line


def test_registered_secrets_are_masked_in_messages_fields_and_tracebacks(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    register_secret("s3cr3t-key-value")
    log = logging.getLogger("strongroom.test")
    log.info("using key %s", "s3cr3t-key-value", extra={"config": {"key": "s3cr3t-key-value"}})
    try:
        raise RuntimeError("auth failed for s3cr3t-key-value")
    except RuntimeError:
        log.exception("request failed")

    output = stream.getvalue()
    assert "s3cr3t-key-value" not in output
    first, second = lines(stream)
    assert first["msg"] == "using key <redacted>"
    assert first["config"] == {"key": "<redacted>"}
    assert second["error"] == "auth failed for <redacted>"
    assert "<redacted>" in second["traceback"]


def test_each_value_of_a_registered_credentials_file_is_masked_alone(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    register_secret("[default]\naws_access_key_id = AKIAEXAMPLE123\naws_secret_access_key = wJalrXUtnFEMI\n")
    logging.getLogger("strongroom.test").warning("key AKIAEXAMPLE123 and secret wJalrXUtnFEMI refused")

    [line] = lines(stream)
    assert line["msg"] == "key <redacted> and secret <redacted> refused"


def test_a_secret_containing_another_is_masked_whole(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    register_secret("abcd")
    register_secret("abcd-efgh-ijkl")
    logging.getLogger("strongroom.test").info("token abcd-efgh-ijkl")

    assert lines(stream)[0]["msg"] == "token <redacted>"


def test_secrets_are_masked_for_other_handlers_formatters_too(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    register_secret("hunter2-password")
    handler = logging.getLogger().handlers[0]
    plain = io.StringIO()
    other = logging.StreamHandler(plain)
    other.setFormatter(logging.Formatter("%(message)s %(user)s"))
    for installed in handler.filters:
        other.addFilter(installed)
    logging.getLogger().addHandler(other)
    logging.getLogger("strongroom.test").info("login hunter2-password", extra={"user": "hunter2-password"})

    assert plain.getvalue().strip() == "login <redacted> <redacted>"


def test_text_format_reads_like_logrus(stream: io.StringIO) -> None:
    configure_logging("info", "text", stream)
    logging.getLogger("strongroom.test").info("backup started", extra={"backup": "b1"})

    line = stream.getvalue().strip()
    assert 'level=info msg="backup started"' in line
    assert "backup=b1" in line
    assert line.startswith("time=")


def test_a_bad_format_is_a_usage_error(stream: io.StringIO) -> None:
    with pytest.raises(UsageError):
        configure_logging("info", "xml", stream)  # type: ignore[arg-type]


def test_configuring_twice_keeps_one_handler(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    configure_logging("info", "json", stream)
    logging.getLogger("strongroom.test").info("once")

    assert [line["msg"] for line in lines(stream)] == ["once"]
