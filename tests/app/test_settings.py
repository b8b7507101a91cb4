"""Environment settings: defaults, and bad values refused with the variable and the allowed values named."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError

KEYS = {"MCP_HANDLE_KEYS": "k:0123456789abcdef"}


def test_defaults():
    settings = Settings.from_env(KEYS)
    assert (settings.slot_name, settings.instance_id) == ("local", "local")
    assert settings.handle_ttl_seconds == 3600
    assert (settings.primes_limit, settings.primes_concurrency) == (10_000_000, 2)
    assert settings.allowed_origins is None


def test_values_are_read():
    settings = Settings.from_env(
        {**KEYS, "MCP_SLOT_NAME": "staging", "WEBSITE_INSTANCE_ID": "abc123", "MCP_HANDLE_TTL_SECONDS": "60"}
    )
    assert (settings.slot_name, settings.instance_id, settings.handle_ttl_seconds) == ("staging", "abc123", 60)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MCP_HANDLE_TTL_SECONDS": "soon"}, "MCP_HANDLE_TTL_SECONDS='soon' is not an integer; allowed: 1..2592000"),
        ({"MCP_HANDLE_TTL_SECONDS": "0"}, "MCP_HANDLE_TTL_SECONDS=0 is out of range; allowed: 1..2592000"),
        ({"MCP_PRIMES_CONCURRENCY": "100"}, "MCP_PRIMES_CONCURRENCY=100 is out of range; allowed: 1..64"),
        ({"MCP_ALLOWED_ORIGINS": "example.com"}, "MCP_ALLOWED_ORIGINS entry 'example.com' is not an origin"),
    ],
)
def test_bad_values_are_named(env, needle):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({**KEYS, **env})
    assert needle in str(error.value)


def test_origin_allow_list_is_exact_and_case_insensitive():
    settings = Settings.from_env({**KEYS, "MCP_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com/"})
    assert settings.origin_allowed("https://A.example.com")
    assert settings.origin_allowed("https://b.example.com")
    assert not settings.origin_allowed("https://a.example.com.evil.net")
    assert not settings.origin_allowed("http://localhost")
