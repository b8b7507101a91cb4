"""app.contract's key ring parser: the one set of rules the host and the stack's config both apply."""

from __future__ import annotations

import pytest

from app.contract import KeyRingError, parse_key_ring

SECRET = "s" * 32


def test_keys_come_in_ring_order_with_entries_and_key_ids_stripped():
    assert list(parse_key_ring(f" k2 :{SECRET}x , k1:{SECRET}", "MCP_HANDLE_KEYS", 32).items()) == [
        ("k2", f"{SECRET}x"),
        ("k1", SECRET),
    ]


@pytest.mark.parametrize(("ring", "entry"), [(f"k1:{SECRET},", 2), (f"k1:{SECRET},,k2:{SECRET}", 2), (",k1:x", 1)])
def test_an_empty_entry_is_refused_not_skipped(ring, entry):
    with pytest.raises(KeyRingError) as refused:
        parse_key_ring(ring, "handleKeys", 32)
    assert str(refused.value).startswith(f"handleKeys entry {entry} is empty")
    assert SECRET not in str(refused.value)
