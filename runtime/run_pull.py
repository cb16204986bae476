"""``run``/``create`` --pull missing|always|never: get the image from its registry first, as
Docker does.

Never imported by a run whose image is in the store: the lookup create does anyway raises
ImageNotFound on a miss, and only then (or for a --pull value other than the default) is this
module, with the registry client behind it, loaded. Progress goes to stderr, as Docker's run
prints it, so the container's stdout stays its own.
"""

from __future__ import annotations

import sys

from isoinspect.runtime.errors import IsoinspectError, NotFound, UsageError
from isoinspect.runtime.images import ImageStore, normalize_ref
from isoinspect.runtime.roots import Roots

PULL_POLICIES = ("always", "missing", "never")


def check_policy(value: str) -> str:
    """A --pull value, or Docker's refusal (exit 125)."""
    if value not in PULL_POLICIES:
        raise UsageError(f"invalid pull option: {value!r}: must be one of \"always\", "
                         "\"missing\" or \"never\"")
    return value


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def pull_image(roots: Roots, ref: str) -> None:
    """Pull ``ref`` with the stored (or ISOINSPECT_REGISTRY_*) credentials and the
    environment's TLS settings, printing Docker's progress lines on stderr; a failure is one
    line, exit 125 (the container never ran)."""
    from isoinspect.runtime.credentials import AUTH_FILE, credentials_for
    from isoinspect.runtime.image_registry import pull
    from isoinspect.runtime.registry_tls import TlsSettings

    try:
        pull(ImageStore(roots), ref, credentials_for(roots.data(AUTH_FILE), ref),
             tls=TlsSettings.from_env(), progress=_say)
    except IsoinspectError as exc:
        hint = " (or create the built-in one: `isoinspect images --ensure-base`)" \
            if normalize_ref(ref) == "busybox:latest" else ""
        raise IsoinspectError(f"{exc}{hint}", exit_code=125) from None


def pull_missing(roots: Roots, ref: str, policy: str) -> None:
    """The image is not in the store: Docker's "No such image" with --pull never, else say
    so and pull it."""
    if policy == "never":
        raise NotFound(f"No such image: {normalize_ref(ref)}")
    _say(f"Unable to find image '{normalize_ref(ref)}' locally")
    pull_image(roots, ref)
