"""The server's --default-volume-snapshot-locations flag: provider:name pairs, mistakes refused."""

from __future__ import annotations

import pytest

from strongroom.cli.server import _provider_locations
from strongroom.errors import UsageError


def test_pairs_are_read_in_order() -> None:
    assert _provider_locations("aws:east, gcp:main") == (("aws", "east"), ("gcp", "main"))
    assert _provider_locations("") == ()


@pytest.mark.parametrize("text", ["aws", "aws:", ":east", "aws:east,aws:west"])
def test_malformed_or_repeated_entries_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--default-volume-snapshot-locations"):
        _provider_locations(text)
