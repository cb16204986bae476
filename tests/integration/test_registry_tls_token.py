"""pull / push / login against a registry as real ones are run: TLS with a self-signed
certificate and bearer-token auth from a token server (Debian's docker-registry on 127.0.0.1,
``auth: token`` with a rootcertbundle; the token server is started here and signs RS256 JWTs
with a key whose certificate is that bundle). Nothing here reaches the internet: Docker Hub
names are sent to this registry with ISOINSPECT_REGISTRY_MIRROR.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import stat
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from registry_server import serve_registry

USER, PASSWORD = "alice", "t0ken-pw"
SERVICE, ISSUER = "isoinspect-test-registry", "isoinspect-test-issuer"
OUR_CERTS_D = "/etc/isoinspect/certs.d"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl_cert(base, name: str, san: str) -> tuple[str, str]:
    key, cert = str(base / f"{name}.key"), str(base / f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", f"/CN=isoinspect-test-{name}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True)
    return key, cert


class TokenServer:
    """The distribution token flow's server side: basic credentials in, a signed JWT out.

    alice gets every action she asks for; anonymous callers get a token with no access
    (so the registry refuses them); a wrong password gets 401. Every request is recorded.
    """

    def __init__(self, key_path: str, cert_path: str, tls_key: str, tls_cert: str) -> None:
        with open(key_path, "rb") as handle:
            self.key = serialization.load_pem_private_key(handle.read(), None)
        with open(cert_path, "rb") as handle:
            der = ssl.PEM_cert_to_DER_cert(handle.read().decode())
        self.x5c = [base64.b64encode(der).decode()]
        self.requests: list[dict] = []
        self.expire_next = False  # the next token is issued already expired
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_cert, tls_key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, access: list[dict]) -> str:
        now = int(time.time())
        if self.expire_next:
            self.expire_next, now = False, now - 3600
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {"iss": ISSUER, "sub": "x", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{b64url(json.dumps(header).encode())}." \
                        f"{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        user = None
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                self.requests.append({"user": user, "refused": True})
                request.send_response(401)
                request.send_header("Content-Length", "0")
                request.end_headers()
                return
        scopes = query.get("scope", [])
        self.requests.append({"user": user, "scopes": scopes,
                              "service": query.get("service", [""])[0]})
        access = []
        if user == USER:
            for scope in scopes:
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": self.sign(access), "expires_in": 300}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def secure_registry(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls-registry")
    tls_key, tls_cert = openssl_cert(base, "tls", "IP:127.0.0.1")
    token_key, token_cert = openssl_cert(base, "token", "DNS:isoinspect-test-token")
    tokens = TokenServer(token_key, token_cert, tls_key, tls_cert)
    auth = (f"  token:\n    realm: https://127.0.0.1:{tokens.port}/token\n"
            f"    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {token_cert}\n")
    try:
        with serve_registry(base, auth, tls=(tls_cert, tls_key)) as served:
            yield {"host": served.host, "ca": tls_cert, "tokens": tokens, "log": served.log,
                   "data": served.data}
    finally:
        tokens.close()


@pytest.fixture
def trusted(secure_registry):
    """The registry's certificate in /etc/isoinspect/certs.d/HOST:PORT/ca.crt (the default
    place isoinspect looks), removed afterwards with every folder this made."""
    made = []
    folder = os.path.join(OUR_CERTS_D, secure_registry["host"])
    for path in ("/etc/isoinspect", OUR_CERTS_D, folder):
        if not os.path.isdir(path):
            os.mkdir(path, 0o755)
            made.append(path)
    shutil.copy(secure_registry["ca"], os.path.join(folder, "ca.crt"))
    try:
        yield folder
    finally:
        os.unlink(os.path.join(folder, "ca.crt"))
        for path in reversed(made):
            os.rmdir(path)


@pytest.fixture
def other_root(iso, tmp_path):
    """A second, empty store (another machine pulling); its cgroups are checked and removed."""
    helper = type(iso)(str(tmp_path / "other-root"))
    yield helper
    leftovers = helper.cgroup_dirs()
    helper.remove_parents()
    shutil.rmtree(helper.root, ignore_errors=True)
    assert not leftovers, f"cgroups left behind: {leftovers}"


def env_of(iso, **extra) -> dict:
    env = {k: v for k, v in iso.env.items() if not k.startswith("ISOINSPECT_REGISTRY_")
           and k not in ("ISOINSPECT_INSECURE_REGISTRIES", "ISOINSPECT_CERTS_DIRS")}
    return dict(env, **extra)


def run(iso, *args, input=None, **extra):
    return subprocess.run([iso.cli, *args], env=env_of(iso, **extra), capture_output=True,
                          text=True, input=input, timeout=180)


def one_line_failure(result, *words) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_tls_trust_comes_from_certs_d_or_insecure_registry_for_that_host_only(
        iso, secure_registry, tmp_path):
    host = secure_registry["host"]
    ref = f"{host}/team/tls:1"
    iso("tag", "busybox", ref, check=True)
    # not trusted: one line naming the certificate problem and the two ways out
    refused = run(iso, "push", "-u", USER, "-p", PASSWORD, ref)
    one_line_failure(refused, "certificate", f"certs.d/{host}/ca.crt",
                     f"--insecure-registry {host}")
    other_host = run(iso, "push", "-u", USER, "-p", PASSWORD, "--insecure-registry",
                     f"127.0.0.2:{host.partition(':')[2]}", ref)
    one_line_failure(other_host, "certificate")
    # --insecure-registry for this host: unverified TLS, the token flow still applies
    pushed = run(iso, "push", "-u", USER, "-p", PASSWORD, "--insecure-registry", host, ref)
    assert pushed.returncode == 0 and ": Pushed" in pushed.stdout, pushed.stderr
    by_env = run(iso, "pull", "-u", USER, "-p", PASSWORD, ref,
                 ISOINSPECT_INSECURE_REGISTRIES=f"example.org,{host}")
    assert by_env.returncode == 0, by_env.stderr
    # the CA in /etc/isoinspect/certs.d/HOST:PORT/: verified TLS, no flag
    untrusted_pull = run(iso, "pull", "-u", USER, "-p", PASSWORD, ref)
    one_line_failure(untrusted_pull, "certificate")
    with_ca = tmp_path / "certs-env"
    (with_ca / host).mkdir(parents=True)
    shutil.copy(secure_registry["ca"], with_ca / host / "ca.crt")
    by_dir_env = run(iso, "pull", "-u", USER, "-p", PASSWORD, ref,
                     ISOINSPECT_CERTS_DIRS=str(with_ca))
    assert by_dir_env.returncode == 0, by_dir_env.stderr


def test_pull_with_the_ca_in_our_certs_d(iso, secure_registry, trusted):
    host = secure_registry["host"]
    ref = f"{host}/team/trusted:1"
    iso("tag", "busybox", ref, check=True)
    pushed = run(iso, "push", "-u", USER, "-p", PASSWORD, ref)
    assert pushed.returncode == 0, pushed.stderr
    iso("rmi", ref, check=True)
    pulled = run(iso, "pull", "-u", USER, "-p", PASSWORD, ref)
    assert pulled.returncode == 0 and f"Downloaded image for {ref}" in pulled.stdout, \
        pulled.stderr
    assert run(iso, "run", "--rm", ref, "echo", "ok").stdout == "ok\n"


def test_login_push_pull_by_token_then_logout(iso, secure_registry, trusted):
    host, tokens = secure_registry["host"], secure_registry["tokens"]
    auth_file = os.path.join(iso.root, "lib", "auth.json")
    no_tty = run(iso, "login", host, input="")
    one_line_failure(no_tty, "non TTY")
    both = run(iso, "login", "-u", USER, "-p", "x", "--password-stdin", host, input="y")
    assert both.returncode == 125 and "mutually exclusive" in both.stderr
    wrong = run(iso, "login", "-u", USER, "--password-stdin", host, input="nope\n")
    one_line_failure(wrong, "unauthorized", "incorrect username or password")
    assert not os.path.exists(auth_file)
    assert tokens.requests[-1] == {"user": USER, "refused": True}
    login = run(iso, "login", "-u", USER, "--password-stdin", host, input=PASSWORD + "\n")
    assert login.returncode == 0 and login.stdout == "Login Succeeded\n", login.stderr
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    stored = json.load(open(auth_file))["auths"][host]["auth"]
    assert base64.b64decode(stored).decode() == f"{USER}:{PASSWORD}"

    ref = f"{host}/team/app:1"
    ctx = os.path.join(iso.root, "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as handle:
        handle.write("FROM busybox\nRUN echo by-token > /tok\n")
    iso("build", "-t", ref, ctx, timeout=120, check=True)
    before = len(tokens.requests)
    pushed = run(iso, "push", ref)  # no -u: the stored credentials
    assert pushed.returncode == 0 and pushed.stdout.count(": Pushed") == 2, pushed.stderr
    asked = tokens.requests[before:]
    assert asked and all(r["user"] == USER and r["service"] == SERVICE for r in asked)
    assert ["repository:team/app:pull,push"] in [r["scopes"] for r in asked]
    assert len(asked) <= 2, asked  # one token per operation and scope set, not per request
    iso("rmi", ref, check=True)
    pulled = run(iso, "pull", ref)
    assert pulled.returncode == 0 and pulled.stdout.count("Pull complete") == 1, pulled.stderr
    assert ["repository:team/app:pull"] in [r["scopes"] for r in tokens.requests[before:]]
    assert run(iso, "run", "--rm", ref, "cat", "/tok").stdout == "by-token\n"

    out = run(iso, "logout", host)
    assert out.returncode == 0 and out.stdout == f"Removing login credentials for {host}\n"
    assert host not in json.load(open(auth_file))["auths"]
    assert run(iso, "logout", host).stdout == f"Not logged in to {host}\n"
    iso("rmi", ref, check=True)
    anonymous = run(iso, "pull", ref)  # an anonymous token grants nothing here
    one_line_failure(anonymous, "access denied", "team/app", "isoinspect login")


def test_docker_hub_names_resolve_and_find_local_images(iso, secure_registry, trusted,
                                                        other_root):
    """'hello' is docker.io/library/hello; the mirror setting sends it to the loopback
    registry, and the pulled image is 'hello:latest' whichever spelling `run` is given."""
    host = secure_registry["host"]
    for path in ("library/hello:latest", "someone/tool:2"):
        iso("tag", "busybox", f"{host}/{path}", check=True)
        assert run(iso, "push", "-u", USER, "-p", PASSWORD, f"{host}/{path}").returncode == 0
    env = {"ISOINSPECT_ROOT": other_root.root, "ISOINSPECT_REGISTRY_MIRROR": host}
    pulled = run(iso, "pull", "-u", USER, "-p", PASSWORD, "hello", **env)
    assert pulled.returncode == 0 and "Downloaded image for hello:latest" in pulled.stdout, \
        pulled.stderr
    pulled = run(iso, "pull", "-u", USER, "-p", PASSWORD, "docker.io/someone/tool:2", **env)
    assert pulled.returncode == 0, pulled.stderr
    names = run(iso, "images", "--format", "{{.Repository}}:{{.Tag}}", **env).stdout.split()
    assert sorted(names) == ["hello:latest", "someone/tool:2"]
    for spelling in ("hello", "library/hello", "docker.io/library/hello:latest"):
        assert run(iso, "run", "--rm", "--network", "none", spelling, "echo", "ok",
                   **env).stdout == "ok\n"
    assert run(iso, "run", "--rm", "--network", "none", "index.docker.io/someone/tool:2", "true",
               **env).returncode == 0
    # by digest: the manifest's digest is checked, no tag is added
    digest = [line.split()[1] for line in pulled.stdout.splitlines()
              if line.startswith("Digest: ")][0]
    pinned = run(iso, "pull", "-u", USER, "-p", PASSWORD, f"someone/tool@{digest}", **env)
    assert pinned.returncode == 0 and f"someone/tool@{digest}" in pinned.stdout, pinned.stderr
    assert sorted(run(iso, "images", "--format", "{{.Repository}}:{{.Tag}}",
                      **env).stdout.split()) == ["hello:latest", "someone/tool:2"]
    wrong = run(iso, "pull", "-u", USER, "-p", PASSWORD, f"someone/tool@sha256:{'0' * 64}",
                **env)
    one_line_failure(wrong, "not found")


def test_an_expired_token_is_renewed_once(iso, secure_registry, trusted):
    """Tokens live minutes and a long push outlives them: a refused token is fetched again
    once; a second refusal is a denial."""
    host, tokens = secure_registry["host"], secure_registry["tokens"]
    ref = f"{host}/team/expiry:1"
    iso("tag", "busybox", ref, check=True)
    assert run(iso, "push", "-u", USER, "-p", PASSWORD, ref).returncode == 0
    iso("rmi", ref, check=True)
    before = len(tokens.requests)
    tokens.expire_next = True
    pulled = run(iso, "pull", "-u", USER, "-p", PASSWORD, ref)
    assert pulled.returncode == 0, pulled.stderr
    assert len(tokens.requests) - before == 2 and not tokens.expire_next


def test_login_exit_codes_match_dockers(iso, secure_registry, trusted):
    """The same logins with the docker CLI (the shared daemon, its config untouched; it
    skips TLS verification for 127.0.0.0/8 by default, we use the certs.d CA)."""
    host = secure_registry["host"]

    def docker(*args, input=None):
        return subprocess.run(["docker", *args], capture_output=True, text=True, input=input,
                              timeout=120)
    try:
        for password, code in (("nope", 1), (PASSWORD, 0)):
            theirs = docker("login", "-u", USER, "--password-stdin", host, input=password)
            ours = run(iso, "login", "-u", USER, "--password-stdin", host, input=password)
            assert theirs.returncode == ours.returncode == code, (theirs.stderr, ours.stderr)
        assert "Login Succeeded" in theirs.stdout and ours.stdout == "Login Succeeded\n"
        missing = f"{host}/team/missing:1"
        theirs, ours = docker("pull", missing), run(iso, "pull", missing)
        assert theirs.returncode == ours.returncode == 1
        assert "not found: manifest unknown" in theirs.stderr
        one_line_failure(ours, "not found: manifest unknown")
    finally:
        docker("logout", host)


class Front:
    """A registry front as Docker Hub and object-store backed registries are: API calls go
    to the registry, blob GETs are answered 307 to a "CDN" on another host:port, which must
    not receive the registry's Authorization header."""

    def __init__(self, backend: str, ca: str, blobs: str) -> None:
        self.cdn_headers: list[dict] = []
        front = self

        class Api(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if "/blobs/" in self.path:
                    digest = self.path.rsplit("/", 1)[1]
                    self.send_response(307)
                    self.send_header("Location", f"http://localhost:{front.cdn_port}/b/{digest}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPSConnection(backend, context=ssl.create_default_context(
                    cafile=ca), timeout=30)
                conn.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                        if k.lower() != "host"})
                answer = conn.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                conn.close()

        class Cdn(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                front.cdn_headers.append(dict(self.headers))
                hexa = self.path.rsplit(":", 1)[1]
                with open(os.path.join(blobs, hexa[:2], hexa, "data"), "rb") as handle:
                    data = handle.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), Api),
                        ThreadingHTTPServer(("127.0.0.1", 0), Cdn)]
        self.port, self.cdn_port = (srv.server_address[1] for srv in self.servers)
        for srv in self.servers:
            threading.Thread(target=srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


def test_blob_redirects_are_followed_without_credentials(iso, secure_registry, trusted,
                                                         tmp_path, other_root):
    host = secure_registry["host"]
    ref = f"{host}/team/redirected:1"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo cdn > /cdn\n")
    iso("build", "-t", ref, str(ctx), timeout=120, check=True)
    assert run(iso, "push", "-u", USER, "-p", PASSWORD, ref).returncode == 0
    blobs = os.path.join(secure_registry["data"], "docker/registry/v2/blobs/sha256")
    front = Front(host, secure_registry["ca"], blobs)
    try:
        # the token server's certificate is trusted for the front's host (Docker: a
        # registry's certs.d CA also applies to its token server)
        certs = tmp_path / "certs.d" / f"127.0.0.1:{front.port}"
        certs.mkdir(parents=True)
        shutil.copy(secure_registry["ca"], certs / "ca.crt")
        other = other_root.root
        via = f"127.0.0.1:{front.port}/team/redirected:1"
        pulled = run(iso, "pull", "-u", USER, "-p", PASSWORD, via, ISOINSPECT_ROOT=other,
                     ISOINSPECT_CERTS_DIRS=str(tmp_path / "certs.d"))
        assert pulled.returncode == 0 and pulled.stdout.count("Pull complete") == 2, \
            pulled.stderr
        assert len(front.cdn_headers) == 3  # two layers and the config
        assert not [h for h in front.cdn_headers if "Authorization" in h]
        assert run(iso, "run", "--rm", "--network", "none", via, "cat", "/cdn",
                   ISOINSPECT_ROOT=other).stdout == "cdn\n"
    finally:
        front.close()


def test_load_reads_stdin(iso, tmp_path):
    archive = tmp_path / "busybox.tar"
    iso("save", "-o", str(archive), "busybox", check=True)
    for args in (("load",), ("load", "-i", "-")):
        root = str(tmp_path / f"root{len(args)}")
        with open(archive, "rb") as stdin:
            result = subprocess.run([iso.cli, *args], stdin=stdin, capture_output=True,
                                    env=dict(iso.env, ISOINSPECT_ROOT=root), timeout=120)
        assert result.returncode == 0, result.stderr
        assert b"Loaded image: busybox:latest" in result.stdout
        assert not os.listdir(os.path.join(root, "lib", "tmp"))
    empty = subprocess.run([iso.cli, "load"], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=iso.env, timeout=60)
    assert empty.returncode == 1 and empty.stderr.count("\n") == 1
    assert "stdin is empty" in empty.stderr
    garbage = subprocess.run([iso.cli, "load"], input=b"not a tar", capture_output=True,
                             env=iso.env, timeout=60)
    assert garbage.returncode == 1 and b"stdin" in garbage.stderr
    assert garbage.stderr.count(b"\n") == 1
