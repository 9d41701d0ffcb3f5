"""Sign-in settings: the mode, the password accounts, the admins, and the user of a request."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.settings import Settings
from assistant.users import SINGLE_USER, NotSignedIn, auth_config, owner_key, parse_users
from tests.conftest import ROOT


class FakeRequest:
    """What the handlers read of a ``gr.Request``: the user Gradio's password sign-in set."""

    def __init__(self, username):
        self.username = username


class FakeProfile:
    """What the handlers read of a ``gr.OAuthProfile`` (tests inject one; no network)."""

    def __init__(self, username):
        self.username = username


def test_users_are_name_password_pairs_and_the_password_is_everything_after_the_first_colon():
    assert parse_users("alice:secret, bob:se:cr:et2") == {"alice": "secret", "bob": "se:cr:et2"}


@pytest.mark.parametrize("value, says", [
    ("alicehunter2", "entry 1 has no ':' between name and password"),
    ("alice:hunter2,:zebra9", "entry 2 has no name before ':'"),
    ("alice:", "entry 1 (alice) has an empty password"),
    ("alice:hunter2,,bob:zebra9", "entry 2 has no ':'"),
    ("alice:hunter2,alice:zebra9", "'alice' appears twice"),
])
def test_malformed_users_get_one_line_that_never_shows_a_password(value, says):
    with pytest.raises(ValueError) as info:
        parse_users(value)
    message = str(info.value)
    assert message.startswith("ASSISTANT_USERS: ") and says in message and "\n" not in message
    assert "hunter2" not in message and "zebra9" not in message


def test_mode_defaults_to_users_when_accounts_are_given_else_single_user():
    assert auth_config(None, None).mode == "none"
    assert auth_config(None, "alice:a").mode == "users"
    assert auth_config("hf", None, "alice").mode == "hf"
    with pytest.raises(ValueError, match="ASSISTANT_AUTH='ldap' is not one of none, users, hf"):
        auth_config("ldap", None)
    with pytest.raises(ValueError, match="ASSISTANT_AUTH=users needs ASSISTANT_USERS"):
        auth_config("users", "")
    with pytest.raises(ValueError, match="ASSISTANT_ADMINS names carol, who are not in ASSISTANT_USERS"):
        auth_config(None, "alice:a", "alice,carol")


def test_password_sign_in_checks_the_password_and_names_admins():
    config = auth_config(None, "alice:secret,bob:pw", "alice")
    assert config.check_password("alice", "secret") and not config.check_password("alice", "pw")
    assert not config.check_password("mallory", "secret")
    alice, bob = config.user(FakeRequest("alice")), config.user(FakeRequest("bob"))
    assert (alice.name, alice.admin, alice.owner) == ("alice", True, "alice")
    assert (bob.name, bob.admin, bob.owner) == ("bob", False, "bob")


@pytest.mark.parametrize("request_", [None, FakeRequest(None), FakeRequest("mallory")])
def test_without_a_signed_in_account_requests_are_refused(request_):
    with pytest.raises(NotSignedIn, match="sign in"):
        auth_config(None, "alice:secret").user(request_)


def test_hf_sign_in_takes_the_user_from_the_oauth_profile_only():
    config = auth_config("hf", None, "alice")
    assert config.user(FakeRequest("bob"), FakeProfile("alice")).name == "alice"
    assert config.user(None, FakeProfile("alice")).admin is True
    with pytest.raises(NotSignedIn, match="Hugging Face"):
        config.user(FakeRequest("bob"), None)  # a username in the request is not an OAuth sign-in


def test_single_user_mode_has_one_admin_whose_uploads_are_public():
    user = auth_config(None, None).user(None)
    assert (user.name, user.admin, user.owner) == (SINGLE_USER, True, None)


def test_owner_keys_are_safe_folder_names():
    assert owner_key("alice") == "alice" and owner_key("bob.smith-2") == "bob.smith-2"
    for odd in ("../etc", "al/ice", "ålice", ".."):
        key = owner_key(odd)
        assert key.startswith("user-") and "/" not in key and key == owner_key(odd)


def test_the_users_setting_is_a_secret_in_printed_settings():
    settings = Settings(users="alice:hunter2")
    assert settings.public_dict()["users"] == "***"
    out = subprocess.run([sys.executable, "-m", "assistant.cli", "config"], capture_output=True, text=True,
                         cwd=ROOT, env={"ASSISTANT_USERS": "alice:hunter2", "PATH": "/usr/bin:/bin",
                                        **{k: v for k, v in __import__("os").environ.items()
                                           if k in ("PYTHONPATH", "HOME")}})
    assert out.returncode == 0 and "hunter2" not in out.stdout and "users" in out.stdout


def test_history_file_sits_beside_the_store_unless_configured(tmp_path):
    assert Settings(store_dir=tmp_path / "store").history_path() == tmp_path / "store-history.sqlite3"
    assert Settings(history_db=tmp_path / "h.db").history_path() == tmp_path / "h.db"
