"""`isoinspect login`: check credentials against a registry before they are stored.

Like Docker, the check is a GET /v2/ answered through the registry's own challenge (basic,
or a token from its realm with the credentials), so a wrong password is refused by the
registry or its token server, not discovered at the next pull.
"""

from __future__ import annotations

from isoinspect.runtime.credentials import Credentials
from isoinspect.runtime.registry_client import Client
from isoinspect.runtime.registry_names import key_endpoint, server_key
from isoinspect.runtime.registry_tls import TlsSettings


def login(server: str | None, credentials: Credentials, tls: TlsSettings) -> str:
    """Verify ``credentials`` at ``server`` (default Docker Hub); return the key to store
    them under. Raises AuthError (exit 1) when refused, RegistryError when unreachable."""
    key = server_key(server)
    client = Client(key_endpoint(key), credentials, tls=tls)
    try:
        # A registry that asks for nothing accepts the login, as with Docker (stored anyway).
        client.request("GET", "/v2/", ok=(200,))
    finally:
        client.close()
    return key
