"""Registry credentials stored by `isoinspect login`: ``auth.json`` in the data dir, mode 0600.

The file has the shape of Docker's ``config.json`` (``{"auths": {KEY: {"auth": base64(user:pw)}}}``,
KEY being ``HOST[:PORT]`` or Docker Hub's ``https://index.docker.io/v1/``), so the same tools
read both; it is isoinspect's own (``/var/lib/isoinspect/auth.json``, or under ``--root``) and
never Docker's file. Like Docker without a credential helper, the password is only encoded,
so the file is root-only.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass

from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.fsutil import write_atomic

AUTH_FILE = "auth.json"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class CredentialStore:
    """Read and change one auth.json; every change rewrites it atomically with mode 0600."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _auths(self) -> dict:
        try:
            with open(self.path, "rb") as handle:
                data = json.loads(handle.read() or b"{}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise IsoinspectError(f"cannot read credentials {self.path}: {exc}") from None
        auths = data.get("auths") if isinstance(data, dict) else None
        return auths if isinstance(auths, dict) else {}

    def _write(self, auths: dict) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        write_atomic(self.path, json.dumps({"auths": auths}, indent=1).encode() + b"\n",
                     mode=0o600)

    def get(self, key: str) -> Credentials | None:
        entry = self._auths().get(key)
        encoded = entry.get("auth") if isinstance(entry, dict) else None
        if not isinstance(encoded, str):
            return None
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise IsoinspectError(f"credentials for {key} in {self.path} are not "
                                  "base64(user:password)") from None
        return Credentials(user, password) if sep and user else None

    def put(self, key: str, credentials: Credentials) -> None:
        auths = self._auths()
        token = f"{credentials.username}:{credentials.password}".encode()
        auths[key] = {"auth": base64.b64encode(token).decode()}
        self._write(auths)

    def remove(self, key: str) -> bool:
        """Forget ``key``; False if there was nothing stored for it."""
        auths = self._auths()
        if key not in auths:
            return False
        del auths[key]
        self._write(auths)
        return True


USER_ENV, PASSWORD_ENV = "ISOINSPECT_REGISTRY_USER", "ISOINSPECT_REGISTRY_PASSWORD"


def credentials_for(path: str, ref: str, username: str | None = None,
                    password: str | None = None) -> Credentials | None:
    """What a pull or push of ``ref`` authenticates with: the given user, else
    ISOINSPECT_REGISTRY_USER/_PASSWORD, else what `login` stored in ``path`` for its registry
    (Docker: only the stored ones). Shared by pull/push and run's pull of a missing image."""
    from isoinspect.runtime.registry_names import parse_reference, reference_key

    username = username or os.environ.get(USER_ENV)
    password = password if password is not None else os.environ.get(PASSWORD_ENV)
    if username:
        return Credentials(username, password or "")
    return CredentialStore(path).get(reference_key(parse_reference(ref)))
