"""Run logs in logrus's text format, as Velero writes backup and restore logs."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from strongroom.archive import iter_log_lines
from strongroom.archive.runlog import RunLog, format_line
from strongroom.archive.sidecars import LogWriter

WHEN = datetime(2026, 11, 25, 15, 34, 26, tzinfo=UTC)


def test_fields_follow_the_message_in_key_order_and_are_quoted_only_when_needed() -> None:
    line = format_line(
        WHEN, "info", "Backed up item", {"resource": "deployments.apps", "namespace": "shop", "name": "a b"}
    )
    assert (
        line
        == 'time="2026-11-25T15:34:26Z" level=info msg="Backed up item" name="a b" namespace=shop resource=deployments.apps'
    )


def test_empty_fields_are_left_out_and_quotes_escaped() -> None:
    line = format_line(WHEN, "error", 'bad "thing"', {"namespace": None, "name": "", "x": "ok"})
    assert line == 'time="2026-11-25T15:34:26Z" level=error msg="bad \\"thing\\"" x=ok'


def test_run_log_streams_gzip_lines_with_its_own_fields() -> None:
    buffer = io.BytesIO()
    echoed: list[str] = []
    log = RunLog(
        LogWriter(buffer),
        {"backup": "velero/b1"},
        clock=lambda: WHEN,
        echo=lambda level, _line: echoed.append(level),
    )
    log.info("Listing items", resource="pods")
    log.warning("careful")
    log.close()
    lines = list(iter_log_lines(buffer.getvalue()))
    assert lines == [
        'time="2026-11-25T15:34:26Z" level=info msg="Listing items" backup=velero/b1 resource=pods',
        'time="2026-11-25T15:34:26Z" level=warning msg=careful backup=velero/b1',
    ]
    assert log.counts == {"info": 1, "warning": 1}
    assert echoed == ["info", "warning"]


def test_bulk_item_lines_read_exactly_as_single_ones() -> None:
    single, bulk = io.BytesIO(), io.BytesIO()
    one = RunLog(LogWriter(single), {"restore": "velero/r1"}, clock=lambda: WHEN)
    many = RunLog(LogWriter(bulk), {"restore": "velero/r1"}, clock=lambda: WHEN)
    refs = [("shop", "web"), (None, "pv-1"), ("shop", "a name")]
    for namespace, name in refs:
        one.info("Restored item", resource="configmaps", namespace=namespace, name=name)
    many.items("Restored item", "configmaps", refs)
    one.close()
    many.close()
    assert list(iter_log_lines(bulk.getvalue())) == list(iter_log_lines(single.getvalue()))
    assert many.counts == one.counts == {"info": 3}
