"""A registry client for pushes that send each layer as it is best sent: the OCI distribution API
(`/v2/`) over urllib3, with the credentials and CA push.py resolved.

Why not the builders' own push: `docker push` gzips every layer, and buildah 1.28 does too when
the destination is a registry -- measured here, `buildah push --disable-compression` still wrote
`tar+gzip` layers to docker-registry, and skopeo 1.9 shares that library. Model weights do not
compress, so gzip costs the push its speed and every pull a decompression. Why not a PyPI
client (oras): it uploads from files, so the layers (one per weights group) would have to be
written to disk first -- a second copy of the weights -- while here they stream from the files
already in the weights context, read once. The protocol used is small: HEAD a blob, mount it
from another repository, a chunked upload (POST, PATCH per part, PUT with the digest), PUT a
manifest; with Basic or Bearer-token authentication (RFC 6750 challenges, as Distribution,
Harbor and the cloud registries answer).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from packager.errors import PushError, bounded, redact
from packager.executor.images.builder import Credentials, Tls, registry_host
from packager.imageref import parse_reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# One PATCH request carries at most this much: some registries and proxies cap a request body
# near 2 GB, and a layer may be larger (a single file above --max-layer-size).
PART = 512 << 20
CHUNK = 1 << 20
TIMEOUT = urllib3.Timeout(connect=30, read=600)


def _fix(target: str, credentials: Credentials) -> str:
    return (f"check the registry address, that it is up, the credentials from "
            f"{credentials.source} and the registry's CA (--ca-bundle) for {registry_host(target)}")


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") \
        else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _auth_entry(path: Path, host: str) -> tuple[str, str] | None:
    """(user, password) for `host` from a Docker-style auth file, through its credential helper
    when it names one; None when it has none."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/"):
        entry = (doc.get("auths") or {}).get(key)
        if isinstance(entry, dict):
            if entry.get("auth"):
                user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
                return user, password
            if entry.get("username"):
                return str(entry["username"]), str(entry.get("password") or "")
    helper = (doc.get("credHelpers") or {}).get(host) or doc.get("credsStore")
    if helper and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(helper)):
        binary = shutil.which(f"docker-credential-{helper}")
        if binary is None:
            return None
        proc = subprocess.run([binary, "get"], input=host, capture_output=True, text=True,
                              timeout=60, check=False)
        if proc.returncode == 0:
            found = json.loads(proc.stdout)
            return str(found.get("Username") or ""), str(found.get("Secret") or "")
    return None


def login(credentials: Credentials, host: str,
          environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The user and password for `host`: the resolved credentials, else the builders' own
    defaults (the containers auth.json, then the Docker config)."""
    if credentials.username is not None:
        return credentials.username, credentials.password or ""
    if credentials.authfile is not None:
        return _auth_entry(credentials.authfile, host)
    env = os.environ if environ is None else environ
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    candidates.append(Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json")
    for path in candidates:
        if path.is_file() and (found := _auth_entry(path, host)) is not None:
            return found
    return None


def trust(tls: Tls, environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The system's roots, the --ca-bundle, and every PEM file of $SSL_CERT_DIR read one by one
    (as buildah's Go TLS reads it: a mounted ConfigMap's `ca.crt` has no OpenSSL hash name)."""
    ctx = urllib3.util.ssl_.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    ctx.load_default_certs()
    if tls.ca_bundle is not None:
        ctx.load_verify_locations(cafile=str(tls.ca_bundle))
    env = os.environ if environ is None else environ
    for directory in filter(None, env.get("SSL_CERT_DIR", "").split(":")):
        with contextlib.suppress(OSError):
            for path in sorted(Path(directory).iterdir()):
                with contextlib.suppress(OSError, ssl.SSLError, ValueError):
                    if path.is_file() and path.stat().st_size <= (16 << 20):
                        ctx.load_verify_locations(cafile=str(path))
    return ctx


@dataclass
class Client:
    """One repository of one registry, authenticated for pull and push."""

    target: str  # host/repository[:tag]
    credentials: Credentials
    tls: Tls

    def __post_init__(self) -> None:
        ref = parse_reference(self.target, what="push target")
        self.host = registry_host(self.target)
        self.repository = ref.repository.removeprefix(self.host + "/")
        self.tag = ref.tag or "latest"
        kwargs: dict[str, Any] = {"timeout": TIMEOUT, "retries": False}
        if not self.tls.verify:
            kwargs["cert_reqs"] = "CERT_NONE"
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        else:
            kwargs["ssl_context"] = trust(self.tls)
        self.http = urllib3.PoolManager(**kwargs)
        self.base = f"https://{self.host}"
        self.auth: str | None = None
        self.token_expires = 0.0
        self.challenge: dict[str, str] | None = None
        self.user = login(self.credentials, self.host)
        self.mount_from: str | None = None
        self._connect()

    # --- requests -------------------------------------------------------------------------

    def _fail(self, what: str, detail: str) -> PushError:
        return PushError(f"push of {bounded(self.target)} failed: {what}: "
                         f"{bounded(redact(detail), 300, quote=False)}",
                         fix=_fix(self.target, self.credentials))

    def _raw(self, method: str, url: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        headers = dict(kwargs.pop("headers", {}))
        if self.challenge is not None and self.challenge.get("scheme") == "bearer" and \
                time.monotonic() > self.token_expires:
            self._token()
        if self.auth:
            headers["Authorization"] = self.auth
        try:
            return self.http.request(method, url, headers=headers, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise self._fail(f"{method} {urllib.parse.urlsplit(url).path}", str(exc)) from None

    def _connect(self) -> None:
        """Find the scheme (https; http only for a loopback registry or --tls-verify false,
        as the Docker engine allows) and the authentication the registry asks for."""
        try:
            resp = self.http.request("GET", f"{self.base}/v2/", retries=False)
        except urllib3.exceptions.SSLError as exc:
            # plain HTTP only where the server speaks no TLS at all; a certificate that does
            # not verify is an error, never a reason to drop TLS
            if "certificate" in str(exc).lower() or not (_is_loopback(self.host)
                                                         or not self.tls.verify):
                raise self._fail("TLS (certificate not trusted? give --ca-bundle)",
                                 str(exc)) from None
            self.base = f"http://{self.host}"
            resp = self._raw("GET", f"{self.base}/v2/")
        except urllib3.exceptions.HTTPError as exc:
            if not (_is_loopback(self.host) or not self.tls.verify):
                raise self._fail("connecting", str(exc)) from None
            self.base = f"http://{self.host}"
            resp = self._raw("GET", f"{self.base}/v2/")
        if resp.status == 401:
            self.challenge = _challenge(resp.headers.get("WWW-Authenticate", ""))
            if self.challenge.get("scheme") == "basic":
                if self.user is None:
                    raise PushError(f"registry {self.host} asks for credentials and none were "
                                    "found", fix="give --authfile or set "
                                    "TRITON_PACKAGER_REGISTRY_USERNAME/_PASSWORD")
                token = base64.b64encode(f"{self.user[0]}:{self.user[1]}".encode()).decode()
                self.auth = f"Basic {token}"
            else:
                self._token()
            resp = self._raw("GET", f"{self.base}/v2/")
        if resp.status == 401:
            raise PushError(f"registry {self.host} refused the credentials from "
                            f"{self.credentials.source}", fix="check the user name and password")
        if resp.status >= 400:
            raise self._fail("GET /v2/", f"HTTP {resp.status}")

    def _token(self) -> None:
        """A Bearer token for pull and push on the repository (and pull on a mount source)."""
        assert self.challenge is not None
        realm = self.challenge.get("realm")
        if not realm:
            raise self._fail("authentication", "the registry's challenge names no realm")
        scopes = [f"repository:{self.repository}:pull,push"]
        if self.mount_from:
            scopes.append(f"repository:{self.mount_from}:pull")
        query = [("scope", s) for s in scopes]
        if self.challenge.get("service"):
            query.append(("service", self.challenge["service"]))
        headers = {}
        if self.user is not None:
            basic = base64.b64encode(f"{self.user[0]}:{self.user[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        try:
            resp = self.http.request("GET", url, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise self._fail("token", str(exc)) from None
        if resp.status != 200:
            raise PushError(f"registry {self.host} gave no token (HTTP {resp.status}) for the "
                            f"credentials from {self.credentials.source}",
                            fix="check the user name, password and push rights")
        doc = json.loads(resp.data)
        self.auth = f"Bearer {doc.get('token') or doc.get('access_token')}"
        self.token_expires = time.monotonic() + max(30, int(doc.get("expires_in") or 60) - 20)

    # --- blobs and manifests ----------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        resp = self._raw("HEAD", f"{self.base}/v2/{self.repository}/blobs/{digest}")
        if resp.status in (200, 307):
            return True
        if resp.status == 404:
            return False
        raise self._fail(f"HEAD blob {digest[:19]}", f"HTTP {resp.status}")

    def mount(self, digest: str, source: str) -> bool:
        """Ask the registry to link blob `digest` from repository `source`; False when it
        cannot (the blob is not there, or the registry does not mount)."""
        if source == self.repository:
            return False
        if self.challenge is not None and self.challenge.get("scheme") == "bearer" and \
                self.mount_from != source:
            self.mount_from = source
            self._token()
        q = urllib.parse.urlencode({"mount": digest, "from": source})
        resp = self._raw("POST", f"{self.base}/v2/{self.repository}/blobs/uploads/?{q}")
        if resp.status == 201:
            return True
        if resp.status == 202 and resp.headers.get("Location"):  # no mount: drop the upload
            self._raw("DELETE", self._url(resp.headers["Location"]))
        return False

    def _url(self, location: str) -> str:
        return urllib.parse.urljoin(self.base + "/", location)

    def upload(self, chunks: Iterable[bytes], expected: str | None = None, *,
               uncompressed: bool = False) -> tuple[str, int]:
        """Upload a blob produced by `chunks` (in PATCH requests of at most PART bytes each),
        hashed while it is sent; return (digest, size). With `expected`, a different digest
        is refused and the upload dropped. `uncompressed`: an uncompressed layer, which a
        registry refusing its media type is told apart for."""
        resp = self._raw("POST", f"{self.base}/v2/{self.repository}/blobs/uploads/")
        if resp.status != 202 or not resp.headers.get("Location"):
            raise self._refused("starting an upload", resp, uncompressed)
        location = self._url(resp.headers["Location"])
        sha = hashlib.sha256()
        total = 0
        source = iter(chunks)
        done = False
        while not done:
            sent = 0

            def part() -> Iterator[bytes]:
                nonlocal sent, done, total
                for chunk in source:
                    sha.update(chunk)
                    total += len(chunk)
                    sent += len(chunk)
                    yield chunk
                    if sent >= PART:
                        return
                done = True

            resp = self._raw("PATCH", location, body=part(), chunked=True,
                             headers={"Content-Type": "application/octet-stream"})
            if resp.status not in (202, 204) or not resp.headers.get("Location"):
                raise self._refused("uploading", resp, uncompressed)
            location = self._url(resp.headers["Location"])
        digest = f"sha256:{sha.hexdigest()}"
        if expected is not None and digest != expected:
            self._raw("DELETE", location)
            raise self._fail("uploading", f"the layer read as {digest[:19]}, not {expected[:19]}"
                             " (a file changed since the image was made?)")
        sep = "&" if "?" in location else "?"
        resp = self._raw("PUT", f"{location}{sep}{urllib.parse.urlencode({'digest': digest})}")
        if resp.status != 201:
            raise self._refused(f"finishing blob {digest[:19]}", resp, uncompressed)
        return digest, total

    def put_manifest(self, manifest: bytes, media_type: str, *,
                     uncompressed: bool = False) -> str:
        """PUT the image manifest under the tag; its digest. `uncompressed`: it names
        uncompressed layers (the weights), which some registries refuse."""
        resp = self._raw("PUT", f"{self.base}/v2/{self.repository}/manifests/{self.tag}",
                         body=manifest, headers={"Content-Type": media_type})
        if resp.status != 201:
            raise self._refused("PUT manifest", resp, uncompressed, manifest=True)
        return f"sha256:{hashlib.sha256(manifest).hexdigest()}"

    def _refused(self, what: str, resp: urllib3.BaseHTTPResponse, uncompressed: bool, *,
                 manifest: bool = False) -> PushError:
        """The error for a request the registry answered with a failure. A registry that does
        not take a media type answers a manifest PUT with 400 MANIFEST_INVALID (Distribution,
        Quay: "manifest invalid") or 415, or names the media type or UNSUPPORTED in its
        `errors` body; a blob with 415. Told apart, the message names the way out:
        --layer-compression gzip when uncompressed layers were sent (weights gzipped, as
        `docker push` sends every layer), else --pusher builder (the builder's own push and
        manifest format)."""
        codes, answer = registry_answer(resp.status, resp.data)
        text = answer.lower()
        media = resp.status == 415 or "UNSUPPORTED" in codes or "media type" in text or \
            "mediatype" in text or (manifest and "MANIFEST_INVALID" in codes)
        if not media:
            return self._fail(what, answer)
        if uncompressed:
            return PushError(
                f"registry {self.host} refused the push of {bounded(self.target)}: it does not "
                f"take uncompressed layers ({OCI_LAYER}, how the weights are sent); "
                f"its answer to {what}: {bounded(answer, 300, quote=False)}",
                fix="push again with --layer-compression gzip (the weights gzipped too, as "
                "`docker push` sends every layer: slower, but every registry takes it)")
        return PushError(
            f"registry {self.host} refused the push of {bounded(self.target)}: it does not take "
            f"an OCI image manifest ({OCI_MANIFEST}) with gzipped layers; its answer to "
            f"{what}: {bounded(answer, 300, quote=False)}",
            fix="push with --pusher builder (the builder's own push, in the image's own "
            "manifest format)")


def registry_answer(status: int, body: bytes) -> tuple[set[str], str]:
    """A registry's failure answer as (its error codes, one line): the distribution API's
    `{"errors": [{"code", "message", "detail"}]}` when the body is that, else its start."""
    codes: set[str] = set()
    parts: list[str] = []
    try:
        doc = json.loads(body[:65536])
    except ValueError:
        doc = None
    for err in (doc.get("errors") if isinstance(doc, dict) else None) or []:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code") or "")
        codes.add(code.upper())
        line = f"{code}: {err.get('message') or ''}".strip(": ")
        if err.get("detail"):
            line += f" ({json.dumps(err['detail'])[:200]})"
        parts.append(line)
    if not parts:
        text = body[:300].decode("utf-8", "replace").strip()
        parts.append(text or "no details")
    return codes, f"HTTP {status} " + "; ".join(parts)


def _challenge(header: str) -> dict[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    out = {"scheme": scheme.lower()}
    for key, value in re.findall(r'(\w+)="([^"]*)"', rest):
        out[key.lower()] = value
    return out
