"""Host settings from the environment: defaults, and bad values refused with the variable and the allowed values named."""

from __future__ import annotations

import pytest

from app.demo.server import DemoSettings
from app.settings import DEFAULT_SERVER, Settings, SettingsError, server_spec

KEYS = {"MCP_REQUEST_STATE_KEYS": "k:" + "0123456789abcdef" * 2}


def test_defaults():
    settings = Settings.from_env(KEYS)
    assert (settings.slot_name, settings.instance_id) == ("local", "local")
    assert settings.allowed_origins is None
    assert server_spec({}) == DEFAULT_SERVER == "app.demo.server:server"


def test_values_are_read():
    settings = Settings.from_env({**KEYS, "MCP_SLOT_NAME": "staging", "WEBSITE_INSTANCE_ID": "abc123"})
    assert (settings.slot_name, settings.instance_id) == ("staging", "abc123")
    assert settings.request_state_keys.signing_kid == "k"
    assert server_spec({"MCP_SERVER": " acme.tools:mcp "}) == "acme.tools:mcp"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MCP_ALLOWED_ORIGINS": "example.com"}, "MCP_ALLOWED_ORIGINS entry 'example.com' is not an origin"),
        (
            {"MCP_REQUEST_STATE_KEYS": "k:too-short-for-aes"},
            "MCP_REQUEST_STATE_KEYS entry 1 (key id 'k'): secret is 17 characters, at least 32 are required",
        ),
    ],
)
def test_bad_values_are_named(env, needle):
    with pytest.raises(ValueError) as error:  # SettingsError, or KeyRingError for a ring
        Settings.from_env({**KEYS, **env})
    assert needle in str(error.value)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MCP_HANDLE_TTL_SECONDS": "soon"}, "MCP_HANDLE_TTL_SECONDS='soon' is not an integer; allowed: 1..2592000"),
        ({"MCP_HANDLE_TTL_SECONDS": "0"}, "MCP_HANDLE_TTL_SECONDS=0 is out of range; allowed: 1..2592000"),
        ({"MCP_PRIMES_CONCURRENCY": "100"}, "MCP_PRIMES_CONCURRENCY=100 is out of range; allowed: 1..64"),
    ],
)
def test_bad_demo_values_are_named(env, needle):
    with pytest.raises(SettingsError) as error:
        DemoSettings.from_env({"MCP_HANDLE_KEYS": "k:0123456789abcdef", **env})
    assert needle in str(error.value)


def test_demo_defaults():
    settings = DemoSettings.from_env({"MCP_HANDLE_KEYS": "k:0123456789abcdef"})
    assert settings.handle_ttl_seconds == 3600
    assert (settings.primes_limit, settings.primes_concurrency) == (10_000_000, 2)


def test_origin_allow_list_is_exact_and_case_insensitive():
    settings = Settings.from_env({**KEYS, "MCP_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com/"})
    assert settings.origin_allowed("https://A.example.com")
    assert settings.origin_allowed("https://b.example.com")
    assert not settings.origin_allowed("https://a.example.com.evil.net")
    assert not settings.origin_allowed("http://localhost")


@pytest.mark.parametrize(
    ("value", "trusted"), [("True", True), ("true", True), ("False", False), ("1", False), ("", False)]
)
def test_the_caller_headers_are_trusted_only_when_website_auth_enabled_is_true(value, trusted):
    assert Settings.from_env({**KEYS, "WEBSITE_AUTH_ENABLED": value}).easy_auth is trusted
    assert Settings.from_env(KEYS).easy_auth is False


def test_tool_roles_are_read():
    settings = Settings.from_env({**KEYS, "MCP_TOOL_ROLES": '{"tally": ["Tally.Use", "Admin"], "echo": ["Admin"]}'})
    assert settings.tool_roles.roles == {"tally": {"Tally.Use", "Admin"}, "echo": {"Admin"}}
    assert Settings.from_env(KEYS).tool_roles is None


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("tally=Admin", "MCP_TOOL_ROLES is not JSON"),
        ('["tally"]', "MCP_TOOL_ROLES is a JSON list; expected a JSON object of tool name -> non-empty list"),
        ('{"tally": []}', "MCP_TOOL_ROLES entry 'tally': [] is not allowed"),
        ('{"tally": "Admin"}', "MCP_TOOL_ROLES entry 'tally': 'Admin' is not allowed"),
        ('{"tally": ["Admin", ""]}', "MCP_TOOL_ROLES entry 'tally': ['Admin', ''] is not allowed"),
        ('{"": ["Admin"]}', "MCP_TOOL_ROLES entry '': ['Admin'] is not allowed"),
    ],
)
def test_bad_tool_roles_are_named(value, needle):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({**KEYS, "MCP_TOOL_ROLES": value})
    assert needle in str(error.value)


def test_the_server_comes_from_the_environment_then_the_package_file_then_the_demo(tmp_path):
    packaged = tmp_path / "mcp-server.txt"
    assert server_spec({}, packaged) == DEFAULT_SERVER  # no file: a checkout of this project
    packaged.write_text("acme_tools.server:mcp\n")
    assert server_spec({}, packaged) == "acme_tools.server:mcp"  # a deployment package
    assert server_spec({"MCP_SERVER": "other:server"}, packaged) == "other:server"  # the operator overrides


def test_package_build_is_the_build_id_the_package_carries(tmp_path):
    from app.settings import SettingsError, package_build

    marker = tmp_path / "mcp-build.txt"
    assert package_build(marker) is None  # outside a deployment package
    marker.write_text("ab" * 32 + "\n")
    assert package_build(marker) == "ab" * 32
    marker.write_text("not a build id\n")
    with pytest.raises(SettingsError, match="not a package build id"):
        package_build(marker)
