"""Who is asking: the sign-in mode, the accounts, the admins, and the signed-in user of a request.

Three modes (``ASSISTANT_AUTH``): ``none`` (single-user, as a local app), ``users`` (Gradio's
password sign-in from ``ASSISTANT_USERS="alice:secret,bob:secret2"``) and ``hf`` (Hugging Face
OAuth on a Space). The user is always read on the server, from the request Gradio signed in
(``gr.Request.username``) or from the OAuth profile Gradio injects (``gr.OAuthProfile``); nothing
the client sends in a field names a user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

MODES = ("none", "users", "hf")
SINGLE_USER = "local"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class NotSignedIn(PermissionError):
    """A request without a signed-in user where sign-in is on."""


@dataclass(frozen=True)
class User:
    """The signed-in user. ``owner`` is the name recorded on their private uploads (None: public)."""

    name: str
    admin: bool = False
    private: bool = True

    @property
    def owner(self) -> str | None:
        return owner_key(self.name) if self.private else None


@dataclass(frozen=True)
class AuthConfig:
    """The sign-in mode, the password accounts (``users`` mode) and the admins' names."""

    mode: str = "none"
    accounts: dict[str, str] = field(default_factory=dict)
    admins: frozenset[str] = frozenset()

    @property
    def single_user(self) -> bool:
        return self.mode == "none"

    def check_password(self, name: str, password: str) -> bool:
        """Gradio's ``auth=`` callable: True when ``name`` signs in with ``password``."""
        expected = self.accounts.get(name)
        return expected is not None and hmac.compare_digest(expected.encode(), str(password).encode())

    def user(self, request=None, profile=None) -> User:
        """The signed-in user of a Gradio request; raises :class:`NotSignedIn` when there is none.

        ``request``: the ``gr.Request`` (its ``username`` is set by password sign-in);
        ``profile``: the ``gr.OAuthProfile`` Gradio injects after Hugging Face sign-in.
        """
        if self.mode == "none":
            return User(SINGLE_USER, admin=True, private=False)
        if self.mode == "hf":
            name = getattr(profile, "username", None) if profile is not None else None
        else:
            name = getattr(request, "username", None) if request is not None else None
            if name is not None and name not in self.accounts:
                name = None
        if not name:
            raise NotSignedIn("Please sign in first." if self.mode == "users" else
                              "Please sign in with Hugging Face first (the button at the top).")
        return User(str(name), admin=name in self.admins)


def owner_key(name: str) -> str:
    """The owner recorded for ``name``'s uploads, also the name of their upload folder: the name
    itself when it is a plain file name (letters, digits, ``._-``), else ``user-<hash>``."""
    if _SAFE_NAME.fullmatch(name) and name not in {".", ".."}:
        return name
    return "user-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]


def parse_users(value: str) -> dict[str, str]:
    """``"alice:secret,bob:secret2"`` as ``{"alice": "secret", "bob": "secret2"}``.

    A name has no ``:`` or ``,``; the password is everything after the first ``:`` and has no
    ``,``. A malformed value raises ``ValueError`` with one line that never shows a password.
    """
    accounts: dict[str, str] = {}
    for number, pair in enumerate(value.split(","), 1):
        name, colon, password = pair.strip().partition(":")
        name = name.strip()
        problem = ("has no ':' between name and password" if not colon else
                   "has no name before ':'" if not name else
                   f"({name}) has an empty password" if not password else "")
        if problem:
            raise ValueError(f"ASSISTANT_USERS: entry {number} {problem}; write name:password pairs "
                             "separated by commas, e.g. alice:secret,bob:secret2")
        if name in accounts:
            raise ValueError(f"ASSISTANT_USERS: {name!r} appears twice; give each user one entry")
        accounts[name] = password
    return accounts


def parse_names(value: str) -> frozenset[str]:
    """Comma-separated names (``ASSISTANT_ADMINS``), blanks ignored."""
    return frozenset(n.strip() for n in (value or "").split(",") if n.strip())


def auth_config(auth: str | None, users: str | None, admins: str = "") -> AuthConfig:
    """The sign-in set-up from ``ASSISTANT_AUTH``, ``ASSISTANT_USERS`` and ``ASSISTANT_ADMINS``.

    ``auth`` defaults to ``users`` when ``users`` is given, else ``none``. Raises ``ValueError``
    with one actionable line for an unknown mode, malformed accounts, or ``users`` without any.
    """
    mode = (auth or "").strip().lower() or ("users" if users and users.strip() else "none")
    if mode not in MODES:
        raise ValueError(f"ASSISTANT_AUTH={auth!r} is not one of {', '.join(MODES)}")
    accounts = parse_users(users) if users and users.strip() and mode == "users" else {}
    if mode == "users" and not accounts:
        raise ValueError("ASSISTANT_AUTH=users needs ASSISTANT_USERS, e.g. alice:secret,bob:secret2")
    admin_names = parse_names(admins)
    unknown = sorted(admin_names - set(accounts)) if mode == "users" else []
    if unknown:
        raise ValueError(f"ASSISTANT_ADMINS names {', '.join(unknown)}, who are not in ASSISTANT_USERS; "
                         "fix the spelling or add the account")
    return AuthConfig(mode, accounts, admin_names)
