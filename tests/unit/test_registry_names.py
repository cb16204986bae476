"""Parsers of the registry code: references (Docker's defaults), challenges, TLS choices, the
credentials file."""

from __future__ import annotations

import os
import stat

import pytest

from isoinspect.runtime.credentials import Credentials, CredentialStore
from isoinspect.runtime.errors import IsoinspectError
from isoinspect.runtime.images import normalize_ref
from isoinspect.runtime.registry_auth import Challenge, parse_challenge, token_url
from isoinspect.runtime.registry_names import (DOCKER_HUB_AUTH_KEY, Reference, api_base,
                                               parse_reference, reference_key, server_key)
from isoinspect.runtime.registry_tls import TlsSettings, is_loopback

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, domain, path, tag, digest", [
    ("busybox", "docker.io", "library/busybox", "latest", ""),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
    ("user/img", "docker.io", "user/img", "latest", ""),
    ("team/sub/img:v2", "docker.io", "team/sub/img", "v2", ""),
    ("docker.io/library/busybox", "docker.io", "library/busybox", "latest", ""),
    ("index.docker.io/user/img:1", "docker.io", "user/img", "1", ""),
    ("localhost/app", "localhost", "app", "latest", ""),
    ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", ""),
    ("127.0.0.1:5000/team/app:1", "127.0.0.1:5000", "team/app", "1", ""),
    ("ghcr.io/owner/app", "ghcr.io", "owner/app", "latest", ""),
    (f"busybox@{DIGEST}", "docker.io", "library/busybox", "", DIGEST),
    (f"reg:5000/a:1@{DIGEST}", "reg:5000", "a", "1", DIGEST),
])
def test_parse_reference_applies_dockers_defaults(ref, domain, path, tag, digest):
    assert parse_reference(ref) == Reference(domain, path, tag, digest)


def test_endpoints_store_names_and_keys():
    hub = parse_reference("busybox")
    assert hub.endpoint == "registry-1.docker.io" and hub.store_name == "busybox:latest"
    assert hub.familiar == "busybox:latest" and reference_key(hub) == DOCKER_HUB_AUTH_KEY
    user = parse_reference("docker.io/user/img:2")
    assert user.store_name == "user/img:2" and user.manifest_ref == "2"
    local = parse_reference("127.0.0.1:5000/team/app")
    assert local.endpoint == "127.0.0.1:5000"
    assert local.store_name == "127.0.0.1:5000/team/app:latest"
    assert reference_key(local) == "127.0.0.1:5000"
    pinned = parse_reference(f"busybox@{DIGEST}")
    assert pinned.manifest_ref == DIGEST and pinned.store_name == ""
    assert pinned.familiar == f"busybox@{DIGEST}"


def test_mirror_only_replaces_docker_hub(monkeypatch):
    monkeypatch.setenv("ISOINSPECT_REGISTRY_MIRROR", "https://127.0.0.1:4443/")
    assert api_base(parse_reference("busybox")) == "127.0.0.1:4443"
    assert api_base(parse_reference("quay.io/a/b")) == "quay.io"
    monkeypatch.delenv("ISOINSPECT_REGISTRY_MIRROR")
    assert api_base(parse_reference("user/img")) == "registry-1.docker.io"


@pytest.mark.parametrize("ref", ["Busybox", "busybox@sha256:12", "a b", ":tag", "UPPER/x",
                                 "reg:5000/" + "a" * 0, "a" * 64, "x/-bad", "busybox:t@g"])
def test_parse_reference_rejects(ref):
    with pytest.raises(IsoinspectError):
        parse_reference(ref)


@pytest.mark.parametrize("spelling", ["busybox", "busybox:latest", "library/busybox",
                                      "docker.io/library/busybox",
                                      "index.docker.io/library/busybox:latest"])
def test_local_store_names_are_dockers_familiar_ones(spelling):
    assert normalize_ref(spelling) == "busybox:latest"
    assert normalize_ref("docker.io/user/img") == "user/img:latest"
    assert normalize_ref("library/a/b") == "library/a/b:latest"  # not Docker's 'library/x'


@pytest.mark.parametrize("server, key", [
    (None, DOCKER_HUB_AUTH_KEY), ("docker.io", DOCKER_HUB_AUTH_KEY),
    ("https://index.docker.io/v1/", DOCKER_HUB_AUTH_KEY),
    ("registry-1.docker.io", DOCKER_HUB_AUTH_KEY),
    ("127.0.0.1:5000", "127.0.0.1:5000"), ("https://Reg.Example:443/", "reg.example:443"),
])
def test_login_server_keys(server, key):
    assert server_key(server) == key


def test_parse_challenge():
    bearer = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.'
                             'docker.io",scope="repository:library/busybox:pull,push"')
    assert bearer == Challenge("bearer", "https://auth.docker.io/token", "registry.docker.io",
                               "repository:library/busybox:pull,push")
    assert parse_challenge('Basic realm="isoinspect \\"test\\""') == \
        Challenge("basic", 'isoinspect "test"')
    assert parse_challenge("bearer realm=http://a/t, service=s") == \
        Challenge("bearer", "http://a/t", "s")
    assert parse_challenge("Negotiate abc") is None and parse_challenge(None) is None
    url = token_url(Challenge("bearer", "https://a/token?x=1", "svc"),
                    ("repository:t/a:pull,push", "repository:t/b:pull"))
    assert url == ("https://a/token?x=1&service=svc&scope=repository%3At%2Fa%3Apull%2Cpush"
                   "&scope=repository%3At%2Fb%3Apull")


def test_insecure_registry_matches_the_named_host_only(monkeypatch):
    monkeypatch.setenv("ISOINSPECT_INSECURE_REGISTRIES", "reg.example:5000, other")
    tls = TlsSettings.from_env(["Mine.Local:443"])
    assert tls.is_insecure("mine.local:443") and tls.is_insecure("reg.example:5000")
    assert not tls.is_insecure("reg.example:5001") and not tls.is_insecure("reg.example")
    assert tls.is_insecure("other:1234") and tls.is_insecure("other")
    assert not tls.is_insecure("others") and not tls.is_insecure("mine.local")
    assert tls.may_use_http("127.0.0.1:5000") and tls.may_use_http("localhost")
    assert not tls.may_use_http("quay.io")
    assert is_loopback("[::1]:5000") and is_loopback("127.3.4.5") and not is_loopback("10.0.0.1")


def test_certs_dirs_are_read_per_host_in_order(tmp_path):
    ours, docker = tmp_path / "iso", tmp_path / "docker"
    (ours / "reg:5000").mkdir(parents=True)
    (docker / "reg:5000").mkdir(parents=True)
    (ours / "reg:5000" / "ca.crt").write_text("x")
    (docker / "reg:5000" / "other.crt").write_text("x")
    (docker / "reg:5000" / "client.cert").write_text("x")
    (docker / "reg:5000" / "client.key").write_text("x")
    tls = TlsSettings((), (str(ours), str(docker)))
    cas, clients = tls.cert_files("reg:5000")
    assert cas == [str(ours / "reg:5000" / "ca.crt"), str(docker / "reg:5000" / "other.crt")]
    assert clients == [(str(docker / "reg:5000" / "client.cert"),
                        str(docker / "reg:5000" / "client.key"))]
    assert tls.cert_files("reg:5001") == ([], [])
    assert tls.cert_files("../reg:5000") == ([], [])
    with pytest.raises(IsoinspectError, match="unusable"):  # "x" is no certificate
        tls.context("reg:5000")
    os.unlink(docker / "reg:5000" / "client.key")
    with pytest.raises(IsoinspectError, match="missing key"):
        tls.cert_files("reg:5000")


def test_credentials_file_is_docker_shaped_and_private(tmp_path):
    store = CredentialStore(str(tmp_path / "lib" / "auth.json"))
    assert store.get("reg:5000") is None and not store.remove("reg:5000")
    store.put("reg:5000", Credentials("alice", "pa:ss"))
    store.put(DOCKER_HUB_AUTH_KEY, Credentials("bob", "x"))
    assert store.get("reg:5000") == Credentials("alice", "pa:ss")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    text = open(store.path).read()
    assert '"auths"' in text and '"YWxpY2U6cGE6c3M="' in text and "pa:ss" not in text
    assert store.remove("reg:5000") and store.get("reg:5000") is None
    assert store.get(DOCKER_HUB_AUTH_KEY) == Credentials("bob", "x")
    (tmp_path / "lib" / "auth.json").write_text('{"auths": {"r": {"auth": "%%%"}}}')
    with pytest.raises(IsoinspectError, match="base64"):
        store.get("r")
