#!/usr/bin/env python3
"""Drives the official MCP Python SDK (PyPI `mcp`) through the MCP authorization flow
(protocol revision 2025-11-25) against inbound, then calls a tool on the MCP server.

The OAuth side is entirely the SDK's own `mcp.client.auth.OAuthClientProvider`:
protected-resource metadata (RFC 9728) from the 401 challenge, authorization-server metadata
(RFC 8414 / OpenID discovery), Dynamic Client Registration (RFC 7591) or a Client ID Metadata
Document URL as client_id, authorization code + PKCE with `resource` (RFC 8707), token
exchange, and step-up re-authorization on `403 insufficient_scope`. This script only supplies
what an application supplies: client metadata, token storage (a JSON file), and the two
browser hooks. The redirect hook plays the user's browser without a browser: it GETs the
authorization URL with a cookie-keeping HTTP client that does not follow redirects, submits
inbound's login form and consent form (parsed with html.parser), and captures `code` and
`state` from the final 303 to the redirect URI; the callback hook hands them to the SDK.

Output: one JSON line on stdout,
  {"tools": [...], "result": "..."|null, "client_id": "...", "registered": bool,
   "scopes": "...", "authorizations": N}
where `registered` says whether this run performed a Dynamic Client Registration and
`authorizations` how many times the SDK sent the user through /authorize in this run.
HTTP exchanges are logged to stderr (no passwords, tokens, codes or secrets). Any failure
exits non-zero with the error on stderr and nothing on stdout.

Run it with the venv that scripts/mcp-env.sh creates (~/.cache/inbound/mcp-venv).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# The SDK's HTTP stack: httpx for mcp 1.x, httpx2 for mcp 2.x.
try:
    import httpx
except ImportError:  # pragma: no cover - mcp 2.x
    import httpx2 as httpx  # type: ignore[no-redef]

import anyio
from pydantic import AnyUrl

import mcp.client.auth.oauth2 as sdk_oauth2
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.session import ClientSession
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

try:
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # pragma: no cover - older 1.x
    streamable_http_client = None  # type: ignore[assignment]
    from mcp.client.streamable_http import streamablehttp_client  # type: ignore[attr-defined]

try:  # mcp 2.x: the callback handler returns an AuthorizationCodeResult
    from mcp.shared.auth import AuthorizationCodeResult  # type: ignore[attr-defined]
except ImportError:
    AuthorizationCodeResult = None  # type: ignore[assignment,misc]

try:
    from importlib.metadata import version as _dist_version

    SDK_VERSION = _dist_version("mcp")
except Exception:  # pragma: no cover
    SDK_VERSION = "unknown"

DEFAULT_REDIRECT_URI = "http://127.0.0.1:33418/callback"
APPROVE_MODES = ("all", "only-mandatory", "checked")
CLIENT_NAME = "inbound MCP test driver (mcp-python-sdk)"

log = logging.getLogger("mcp-driver")

# Query parameters whose values are shown in logs; every other one is shown as `name=…`.
_SHOWN_PARAMS = {
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "resource",
    "code_challenge_method",
    "prompt",
    "error",
    "error_description",
    "iss",
}


class DriverError(Exception):
    """A failure with a message meant for the test's output."""


def safe_url(url: Any) -> str:
    """`url` without userinfo and fragment, and with only harmless query values shown."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(
        f"{k}={v}" if k in _SHOWN_PARAMS else f"{k}=…" for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --------------------------------------------------------------------------------------------
# Token storage: one JSON file holding the SDK's tokens and client information.
# --------------------------------------------------------------------------------------------


class FileTokenStorage(TokenStorage):
    """The SDK's `TokenStorage` protocol over a JSON file `{"tokens": {...}, "client_info": {...}}`.

    Written atomically with mode 0600. Also records, for the report, whether this run stored
    a registration obtained from the registration endpoint (as opposed to a CIMD client_id,
    which the SDK stores through the same call without registering anything).
    """

    def __init__(self, path: str, client_metadata_url: str | None):
        self.path = path
        self.client_metadata_url = client_metadata_url
        self.registered = False
        self._data: dict[str, Any] = {}
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    self._data = json.load(f) or {}
            except (OSError, ValueError) as e:
                raise DriverError(f"cannot read token storage {path}: {e}") from e
            if not isinstance(self._data, dict):
                raise DriverError(f"token storage {path} is not a JSON object")

    def _save(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".mcp-storage-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    async def get_tokens(self) -> OAuthToken | None:
        raw = self._data.get("tokens")
        return OAuthToken.model_validate(raw) if raw else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._data["tokens"] = tokens.model_dump(mode="json", exclude_none=True)
        self._data["tokens_saved_at"] = int(time.time())
        self._save()
        log.info("storage: saved tokens (scope=%r, expires_in=%s)", tokens.scope, tokens.expires_in)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        raw = self._data.get("client_info")
        return OAuthClientInformationFull.model_validate(raw) if raw else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._data["client_info"] = client_info.model_dump(mode="json", exclude_none=True)
        self._save()
        via_cimd = self.client_metadata_url is not None and client_info.client_id == self.client_metadata_url
        if not via_cimd:
            self.registered = True
        log.info(
            "storage: saved client info (client_id=%s, %s, token_endpoint_auth_method=%s)",
            client_info.client_id,
            "client ID metadata document" if via_cimd else "dynamic registration",
            client_info.token_endpoint_auth_method,
        )

    def tokens_scope(self) -> str | None:
        return (self._data.get("tokens") or {}).get("scope")

    def client_id(self) -> str | None:
        return (self._data.get("client_info") or {}).get("client_id")


# --------------------------------------------------------------------------------------------
# The user's browser: html.parser over inbound's login and consent pages.
# --------------------------------------------------------------------------------------------


class Form:
    def __init__(self, action: str, method: str):
        self.action = action
        self.method = method
        # Each control: {"tag", "type", "name", "value", "checked", "disabled", "options"}
        self.controls: list[dict[str, Any]] = []


class PageParser(HTMLParser):
    """Collects the forms of a page with their controls, the `<title>`, and the text of
    elements with class `error` (inbound's error message on the login page)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.title = ""
        self.errors: list[str] = []
        self.text: list[str] = []
        self._form: Form | None = None
        self._select: dict[str, Any] | None = None
        self._option: dict[str, Any] | None = None
        self._in_title = False
        self._error_depth = 0
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag in ("script", "style"):
            self._skip_depth += 1
        if tag == "title":
            self._in_title = True
        if "error" in a.get("class", "").split() or a.get("role") == "alert":
            self._error_depth = 1
            self.errors.append("")
        elif self._error_depth:
            self._error_depth += 1
        if tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        if tag == "input":
            self._form.controls.append(
                {
                    "tag": "input",
                    "type": a.get("type", "text").lower(),
                    "name": a.get("name"),
                    "value": a.get("value"),
                    "checked": "checked" in a,
                    "disabled": "disabled" in a,
                }
            )
        elif tag == "button":
            self._form.controls.append(
                {
                    "tag": "button",
                    "type": a.get("type", "submit").lower(),
                    "name": a.get("name"),
                    "value": a.get("value", ""),
                    "disabled": "disabled" in a,
                }
            )
        elif tag == "select":
            self._select = {
                "tag": "select",
                "name": a.get("name"),
                "disabled": "disabled" in a,
                "options": [],
            }
            self._form.controls.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "label": ""}
            self._select["options"].append(self._option)
        elif tag == "textarea":
            self._form.controls.append(
                {"tag": "textarea", "name": a.get("name"), "value": "", "disabled": "disabled" in a}
            )

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip_depth:
            self._skip_depth -= 1
        if tag == "title":
            self._in_title = False
        if self._error_depth:
            self._error_depth -= 1
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "option":
            self._option = None

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self.title += data
        if self._error_depth and self.errors:
            self.errors[-1] += data
        if self._option is not None:
            self._option["label"] += data
        if data.strip():
            self.text.append(data.strip())

    def summary(self) -> str:
        """A short text of the page, for error messages."""
        errors = [e.strip() for e in self.errors if e.strip()]
        if errors:
            return " / ".join(errors)
        return " ".join(self.text)[:400]


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


def form_fields(form: Form, submit: tuple[str, str] | None) -> list[tuple[str, str]]:
    """What a browser submits for `form` (HTML's form data set): enabled named controls,
    checkboxes and radios only when checked, a select's selected option (else its first),
    and only the button that was clicked."""
    fields: list[tuple[str, str]] = []
    for c in form.controls:
        name = c.get("name")
        if not name or c.get("disabled"):
            continue
        if c["tag"] == "button" or (c["tag"] == "input" and c["type"] in ("submit", "image", "reset", "button")):
            continue
        if c["tag"] == "select":
            options = c["options"]
            chosen = [o for o in options if o["selected"]] or options[:1]
            for o in chosen:
                fields.append((name, o["value"] if o["value"] is not None else o["label"].strip()))
            continue
        if c["tag"] == "input" and c["type"] in ("checkbox", "radio"):
            if c["checked"]:
                fields.append((name, c["value"] if c["value"] is not None else "on"))
            continue
        if c["tag"] == "input" and c["type"] == "file":
            continue
        fields.append((name, c.get("value") or ""))
    # A radio group with nothing checked submits nothing in a browser; a duration radio group
    # is handled by the caller.
    if submit is not None:
        fields.append(submit)
    return fields


def find_form(page: PageParser, path: str) -> Form | None:
    for form in page.forms:
        if urlsplit(form.action).path == path:
            return form
    return None


class Browser:
    """The user's browser: one cookie jar for the whole run (so a second authorization in the
    same run, e.g. a step-up, reuses the inbound session), no automatic redirects."""

    MAX_STEPS = 24

    def __init__(
        self,
        username: str,
        password: str,
        redirect_uri: str,
        approve_scopes: list[str],
        timeout: float,
        upstream: str | None = None,
    ):
        self.username = username
        self.password = password
        # The origin of an upstream OpenID Provider inbound may send the user to (federated
        # sign-in): its development login (account name) and consent forms are submitted too.
        self.upstream = urlsplit(upstream) if upstream else None
        self.redirect_uri = redirect_uri
        self.approve_scopes = approve_scopes
        self.http = httpx.Client(
            follow_redirects=False,
            timeout=timeout,
            event_hooks={"response": [self._log_response]},
        )
        self.authorizations = 0
        self.consents = 0
        self._lock = threading.Lock()

    @staticmethod
    def _log_response(response: Any) -> None:
        request = response.request
        log.info("browser: %s %s -> %s", request.method, safe_url(request.url), response.status_code)

    def close(self) -> None:
        self.http.close()

    def _is_callback(self, url: str) -> bool:
        target, mine = urlsplit(url), urlsplit(self.redirect_uri)
        return (target.scheme, target.hostname, target.port, target.path) == (
            mine.scheme,
            mine.hostname,
            mine.port,
            mine.path,
        )

    def authorize(self, authorization_url: str) -> dict[str, str]:
        """Follows the authorization URL through login and consent to the redirect URI and
        returns the redirect's query parameters (`code`, `state`, `iss`)."""
        with self._lock:
            self.authorizations += 1
            return self._authorize(authorization_url)

    def _authorize(self, authorization_url: str) -> dict[str, str]:
        origin = urlsplit(authorization_url)
        response = self.http.get(authorization_url)
        logged_in = False
        consented = False
        for _ in range(self.MAX_STEPS):
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    raise DriverError(f"{response.status_code} without Location from {safe_url(response.url)}")
                target = urljoin(str(response.url), location)
                if self._is_callback(target):
                    params = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
                    if "error" in params:
                        raise DriverError(
                            f"authorization failed: {params['error']}: {params.get('error_description', '')}"
                        )
                    if not params.get("code"):
                        raise DriverError(f"redirect to the callback without a code: {safe_url(target)}")
                    log.info("browser: landed on the redirect URI with a code (params: %s)", ", ".join(sorted(params)))
                    return params
                t = urlsplit(target)
                upstream = self.upstream is not None and (t.scheme, t.netloc) == (
                    self.upstream.scheme,
                    self.upstream.netloc,
                )
                if (t.scheme, t.netloc) != (origin.scheme, origin.netloc) and not upstream:
                    raise DriverError(f"redirected off the authorization server to {safe_url(target)}")
                response = self.http.get(target)
                continue
            html = response.text
            page = parse_page(html)
            if response.status_code not in (200, 401):
                raise DriverError(
                    f"{response.request.method} {safe_url(response.url)} answered {response.status_code}: "
                    f"{page.summary() or html[:400]}"
                )
            login = find_form(page, "/login")
            consent = find_form(page, "/consent")
            at_upstream = self.upstream is not None and (urlsplit(str(response.url)).netloc == self.upstream.netloc)
            if at_upstream:
                response = self._submit_upstream(response, page)
            elif login is not None:
                if logged_in:
                    raise DriverError(f"login refused for {self.username!r}: {page.summary()}")
                response = self._submit_login(response, login)
                logged_in = True
            elif consent is not None:
                if consented:
                    raise DriverError(f"consent page shown again after approving: {page.summary()}")
                response = self._submit_consent(response, consent, page)
                consented = True
            else:
                raise DriverError(
                    f"{safe_url(response.url)} ({response.status_code}) shows neither the login nor the "
                    f"consent form: {page.title.strip()}: {page.summary()}"
                )
        raise DriverError(f"no redirect to {self.redirect_uri} after {self.MAX_STEPS} steps")

    def _post(self, page_response: Any, form: Form, fields: list[tuple[str, str]]) -> Any:
        if form.method != "post":
            raise DriverError(f"form {form.action!r} uses method {form.method!r}, expected post")
        url = urljoin(str(page_response.url), form.action)
        return self.http.post(
            url,
            content=urlencode(fields).encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )

    def _submit_upstream(self, page_response: Any, page: PageParser) -> Any:
        """The upstream provider's page: its login form (`login`, `password`) or its consent
        form (hidden `prompt=consent`)."""
        if not page.forms:
            raise DriverError(f"upstream page without a form: {page.title.strip()}: {page.summary()}")
        form = page.forms[0]
        names = {c.get("name") for c in form.controls}
        fields = []
        for name, value in form_fields(form, None):
            if name == "login":
                value = self.username
            elif name == "password":
                value = "upstream-password-unused"
            fields.append((name, value))
        log.info("browser: %s at the upstream provider", "signing in" if "login" in names else "consenting")
        return self._post(page_response, form, fields)

    def _submit_login(self, page_response: Any, form: Form) -> Any:
        names = {c.get("name") for c in form.controls}
        for required in ("request_id", "csrf", "username", "password"):
            if required not in names:
                raise DriverError(f"login form has no {required!r} field")
        fields = []
        for name, value in form_fields(form, None):
            if name == "username":
                value = self.username
            elif name == "password":
                value = self.password
            fields.append((name, value))
        log.info("browser: signing in as %s", self.username)
        return self._post(page_response, form, fields)

    def _submit_consent(self, page_response: Any, form: Form, page: PageParser) -> Any:
        names = {c.get("name") for c in form.controls}
        for required in ("request_id", "csrf", "decision"):
            if required not in names:
                raise DriverError(f"consent form has no {required!r} field")
        approve = next(
            (
                c
                for c in form.controls
                if c.get("name") == "decision" and c.get("value") == "approve" and not c.get("disabled")
            ),
            None,
        )
        if approve is None:
            raise DriverError("consent form has no enabled decision=approve button")

        # Scopes on offer: `mandatory` (a hidden `scope` input, or a checked but disabled
        # `scope` checkbox), `optional` (enabled `scope` checkboxes, `preselected` if checked).
        mandatory: list[str] = []
        optional: list[str] = []
        preselected: list[str] = []
        for c in form.controls:
            if c.get("name") != "scope" or c["tag"] != "input":
                continue
            value = c.get("value") or ""
            if c["type"] == "hidden" or (c["type"] == "checkbox" and c["disabled"] and c["checked"]):
                mandatory.append(value)
            elif c["type"] == "checkbox" and not c["disabled"]:
                optional.append(value)
                if c["checked"]:
                    preselected.append(value)
        # The i-th consent page of the run uses the i-th mode; the last one repeats.
        mode = self.approve_scopes[min(self.consents, len(self.approve_scopes) - 1)]
        self.consents += 1
        if mode == "all":
            chosen_optional = optional
        elif mode == "only-mandatory":
            chosen_optional = []
        else:
            chosen_optional = preselected
        scopes = list(dict.fromkeys(mandatory + chosen_optional))

        fields = [(n, v) for n, v in form_fields(form, None) if n != "scope"]
        # A duration offered as radio buttons with none checked: take the first, as a user would.
        if not any(n == "duration" for n, _ in fields):
            radios = [c for c in form.controls if c.get("name") == "duration" and not c.get("disabled")]
            if radios:
                fields.append(("duration", radios[0].get("value") or ""))
        fields += [("scope", s) for s in scopes]
        fields.append(("decision", "approve"))
        duration = next((v for n, v in fields if n == "duration"), None)
        log.info(
            "browser: consent offers mandatory=%s optional=%s; approving %s for duration=%s (%s)",
            mandatory,
            optional,
            scopes,
            duration,
            mode,
        )
        return self._post(page_response, form, fields)


# --------------------------------------------------------------------------------------------
# The SDK side.
# --------------------------------------------------------------------------------------------


def allow_loopback_http_cimd() -> None:
    """The SDK accepts only `https` client metadata URLs (its `is_valid_client_metadata_url`),
    as the CIMD draft requires; inbound, like the draft's development exception, also accepts
    `http` on a loopback host when its ConsentPolicy allows private addresses. Tests serve the
    document from 127.0.0.1 without TLS, so for such URLs (and only those) the SDK's check is
    widened. The choice between CIMD and registration stays the SDK's."""
    original = sdk_oauth2.is_valid_client_metadata_url

    def is_valid(url: str | None) -> bool:
        if original(url):
            return True
        if not url:
            return False
        parts = urlsplit(url)
        return (
            parts.scheme == "http"
            and parts.hostname in ("127.0.0.1", "localhost", "::1")
            and parts.path not in ("", "/")
        )

    sdk_oauth2.is_valid_client_metadata_url = is_valid  # type: ignore[assignment]


def make_provider(args: argparse.Namespace, storage: FileTokenStorage, browser: Browser | None) -> OAuthClientProvider:
    metadata: dict[str, Any] = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [AnyUrl(args.redirect_uri)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": args.token_endpoint_auth_method,
    }
    if args.scope:
        metadata["scope"] = args.scope
    client_metadata = OAuthClientMetadata.model_validate(metadata)

    captured: list[dict[str, str]] = []

    async def redirect_handler(authorization_url: str) -> None:
        log.info("sdk: authorization request %s", safe_url(authorization_url))
        if browser is None:
            raise DriverError("no browser in --self-check mode")
        params = await anyio.to_thread.run_sync(browser.authorize, authorization_url)
        captured.append(params)

    async def callback_handler() -> Any:
        if not captured:
            raise DriverError("callback handler called before the redirect handler")
        params = captured.pop()
        code, state = params["code"], params.get("state")
        if AuthorizationCodeResult is not None:  # mcp 2.x
            return AuthorizationCodeResult(code=code, state=state, iss=params.get("iss"))
        return code, state

    if args.client_metadata_url and urlsplit(args.client_metadata_url).scheme == "http":
        log.info("sdk: allowing an http (loopback) client metadata URL; the SDK itself requires https")
        allow_loopback_http_cimd()

    return OAuthClientProvider(
        server_url=args.server,
        client_metadata=client_metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=args.client_metadata_url,
    )


async def _log_request(request: Any) -> None:
    # Only the method and URL: never the Authorization header or the body.
    log.debug("http: %s %s", request.method, safe_url(request.url))


async def _log_http_response(response: Any) -> None:
    request = response.request
    extra = ""
    challenge = response.headers.get("www-authenticate")
    if response.status_code in (401, 403) and challenge:
        extra = f" (WWW-Authenticate: {challenge})"
    log.info("http: %s %s -> %s%s", request.method, safe_url(request.url), response.status_code, extra)


def tool_result_text(result: Any) -> str:
    parts = []
    for block in getattr(result, "content", None) or []:
        text = getattr(block, "text", None)
        if text is not None:
            parts.append(text)
        else:
            parts.append(json.dumps(block.model_dump(mode="json", exclude_none=True)))
    if not parts:
        structured = getattr(result, "structuredContent", None) or getattr(result, "structured_content", None)
        if structured is not None:
            return json.dumps(structured)
    return "\n".join(parts)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    storage = FileTokenStorage(args.storage, args.client_metadata_url)
    browser = Browser(
        args.username, args.password, args.redirect_uri, args.approve_scopes, args.timeout, args.upstream
    )
    try:
        provider = make_provider(args, storage, browser)
        http_client = httpx.AsyncClient(
            auth=provider,
            timeout=httpx.Timeout(args.timeout, read=max(args.timeout, 60.0)),
            follow_redirects=False,
            event_hooks={"request": [_log_request], "response": [_log_http_response]},
        )
        tools: list[str] = []
        result_text: str | None = None
        with anyio.fail_after(args.timeout):
            async with http_client:
                if streamable_http_client is not None:
                    transport = streamable_http_client(args.server, http_client=http_client)
                else:  # pragma: no cover - older 1.x
                    transport = streamablehttp_client(args.server, auth=provider)
                async with transport as streams:
                    read_stream, write_stream = streams[0], streams[1]
                    async with ClientSession(read_stream, write_stream) as session:
                        init = await session.initialize()
                        log.info(
                            "mcp: initialized (protocol %s, server %s)",
                            init.protocolVersion if hasattr(init, "protocolVersion") else init.protocol_version,
                            getattr(init, "serverInfo", None) and init.serverInfo.name,
                        )
                        listing = await session.list_tools()
                        tools = [t.name for t in listing.tools]
                        log.info("mcp: tools %s", tools)
                        if args.tool:
                            try:
                                tool_args = json.loads(args.tool_args) if args.tool_args else {}
                            except ValueError as e:
                                raise DriverError(f"--tool-args is not JSON: {e}") from e
                            if not isinstance(tool_args, dict):
                                raise DriverError("--tool-args must be a JSON object")
                            result = await session.call_tool(args.tool, tool_args)
                            result_text = tool_result_text(result)
                            is_error = getattr(result, "isError", None) or getattr(result, "is_error", None)
                            if is_error:
                                raise DriverError(f"tool {args.tool} returned an error: {result_text}")
                            log.info("mcp: tool %s answered", args.tool)
        return {
            "tools": tools,
            "result": result_text,
            "client_id": storage.client_id(),
            "registered": storage.registered,
            "scopes": storage.tokens_scope(),
            "authorizations": browser.authorizations,
        }
    finally:
        browser.close()


def self_check(args: argparse.Namespace) -> int:
    """Builds the SDK objects this driver uses, without any network access."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "storage.json")
        storage = FileTokenStorage(path, args.client_metadata_url)
        provider = make_provider(args, storage, None)
        assert isinstance(provider, OAuthClientProvider)

        async def roundtrip() -> None:
            await storage.set_client_info(
                OAuthClientInformationFull(client_id="self-check", redirect_uris=[AnyUrl(args.redirect_uri)])
            )
            await storage.set_tokens(OAuthToken(access_token="x", token_type="Bearer", scope="a b"))
            again = FileTokenStorage(path, None)
            info, tokens = await again.get_client_info(), await again.get_tokens()
            assert info is not None and info.client_id == "self-check"
            assert tokens is not None and tokens.scope == "a b"
            httpx.AsyncClient(auth=provider)
            ClientSession  # noqa: B018 - imported from the SDK

        anyio.run(roundtrip)
    page = parse_page(
        '<form method="post" action="/consent"><input type="hidden" name="request_id" value="r">'
        '<input type="hidden" name="csrf" value="c"><input type="checkbox" checked disabled>'
        '<input type="hidden" name="scope" value="m"><input type="checkbox" name="scope" value="o" checked>'
        '<input type="checkbox" name="scope" value="u"><input type="checkbox" disabled>'
        '<select name="duration"><option value="1">1</option><option value="2" selected>2</option></select>'
        '<button name="decision" value="approve">Allow</button><button name="decision" value="deny">Deny</button>'
        "</form>"
    )
    form = find_form(page, "/consent")
    assert form is not None
    fields = form_fields(form, ("decision", "approve"))
    assert fields == [
        ("request_id", "r"),
        ("csrf", "c"),
        ("scope", "m"),
        ("scope", "o"),
        ("duration", "2"),
        ("decision", "approve"),
    ], fields
    print(
        json.dumps(
            {
                "self_check": "ok",
                "sdk": SDK_VERSION,
                "provider": f"{OAuthClientProvider.__module__}.{OAuthClientProvider.__qualname__}",
                "transport": (
                    f"{streamable_http_client.__module__}.{streamable_http_client.__qualname__}"
                    if streamable_http_client is not None
                    else "mcp.client.streamable_http.streamablehttp_client"
                ),
                "http": httpx.__name__,
            }
        )
    )
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Run the official MCP Python SDK's OAuth flow against inbound, playing the user's browser, "
            "then list tools and optionally call one. Prints one JSON line on success."
        ),
    )
    p.add_argument("--server", help="MCP server endpoint (streamable HTTP), e.g. http://127.0.0.1:PORT/mcp")
    p.add_argument("--username", help="user to sign in as on inbound's login page")
    p.add_argument("--password", help="that user's password (never logged)")
    p.add_argument("--storage", help="JSON file holding tokens and client info across runs")
    p.add_argument(
        "--client-metadata-url",
        help=(
            "use this Client ID Metadata Document URL as client_id when the authorization server "
            "advertises client_id_metadata_document_supported (else the SDK registers); the SDK wants "
            "https, http is accepted for loopback hosts only"
        ),
    )
    p.add_argument(
        "--scope",
        help=(
            "initial scope in the client metadata; note the SDK replaces it before registering and "
            "authorizing with the scope of the WWW-Authenticate challenge, else the protected "
            "resource's scopes_supported, else the authorization server's"
        ),
    )
    p.add_argument(
        "--upstream",
        help="origin of an upstream OpenID Provider inbound sends the user to (federated sign-in); "
        "--username is then the upstream account",
    )
    p.add_argument("--tool", help="tool to call after listing tools")
    p.add_argument("--tool-args", default="{}", help="JSON object of tool arguments (default {})")
    p.add_argument(
        "--approve-scopes",
        default="checked",
        metavar="all|only-mandatory|checked[,...]",
        help=(
            "on the consent page: submit every grantable scope (all), only the mandatory ones "
            "(only-mandatory), or the scopes as preselected on the page (checked, the default). A "
            "comma-separated list applies to the run's successive consent pages, the last one "
            "repeating (e.g. only-mandatory,all: the first consent grants the mandatory scopes, a "
            "step-up consent later in the run grants everything)"
        ),
    )
    p.add_argument(
        "--redirect-uri",
        default=DEFAULT_REDIRECT_URI,
        help=f"redirect URI to register and use (default {DEFAULT_REDIRECT_URI}; nothing listens on it)",
    )
    p.add_argument(
        "--token-endpoint-auth-method",
        choices=["none", "client_secret_basic", "client_secret_post"],
        default="none",
        help="token_endpoint_auth_method asked for at registration (default none: a public client)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="overall time limit in seconds (default 120)")
    p.add_argument("-v", "--verbose", action="store_true", help="also log the SDK's debug messages")
    p.add_argument(
        "--self-check",
        action="store_true",
        help="build the SDK objects (provider, storage, session class) without network access and exit",
    )
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.approve_scopes.split(",")]
    bad = [m for m in modes if m not in APPROVE_MODES]
    if bad:
        p.error(f"--approve-scopes: unknown mode {', '.join(bad)} (choose from {', '.join(APPROVE_MODES)})")
    args.approve_scopes = modes
    if args.self_check:
        args.server = args.server or "http://127.0.0.1:9/mcp"
        return args
    missing = [f"--{n}" for n in ("server", "username", "password", "storage") if not getattr(args, n)]
    if missing:
        p.error(f"missing {', '.join(missing)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("mcp").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.self_check:
        return self_check(args)
    log.info("mcp SDK %s; server %s; storage %s", SDK_VERSION, args.server, args.storage)
    try:
        report = anyio.run(run, args)
    except BaseException as e:  # noqa: BLE001 - report every failure, including exception groups
        if isinstance(e, KeyboardInterrupt):
            raise
        print(f"mcp_client: FAILED: {describe(e)}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


def describe(e: BaseException) -> str:
    """The innermost meaningful messages of `e` (task groups wrap failures in exception groups)."""
    inner = getattr(e, "exceptions", None)
    if inner:
        return "; ".join(describe(x) for x in inner)
    if isinstance(e, TimeoutError):
        return "timed out (--timeout)"
    text = f"{type(e).__name__}: {e}"
    cause = e.__cause__ or (e.__context__ if not e.__suppress_context__ else None)
    if cause is not None and not isinstance(e, DriverError):
        text += f" (caused by {describe(cause)})"
    return text


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
