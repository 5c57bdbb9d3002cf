#!/usr/bin/env python3
"""A small application with its own login page, signing its users in to inbound
(application-hosted login, examples/identity/application-login.yaml).

inbound sends the browser to GET /inbound-login?login_challenge=...; this page asks for the
user's name and password (the application's own accounts, here a table), then accepts the
challenge on inbound's back channel with the credentials of its InboundApp and sends the
browser where inbound says. Python standard library only.

  INBOUND_ISSUER=https://auth.example.com \
  INBOUND_CREDENTIALS=/var/run/secrets/acme-login-credentials \
  PORT=3001 python3 examples/identity/login-app.py

INBOUND_CREDENTIALS is the folder of the InboundApp's credentials (the mounted Secret, or
inbound serve's data-dir/credentials/<namespace>/<name>-credentials) holding client_id and
client_secret. Prints `listening <login URL>` once it serves (PORT=0 picks a free port).
"""

import base64
import html
import http.server
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

ISSUER = os.environ["INBOUND_ISSUER"].rstrip("/")
CREDENTIALS = os.environ["INBOUND_CREDENTIALS"]

# The application's own accounts (a real one has its database and password hashes).
USERS = {
    "dana": {
        "password": "wonderland",
        "subject": "u-42",
        "username": "dana@acme.example",
        "tenants": ["acme"],
        "roles": ["billing-admin"],
        "attributes": {"email": "dana@acme.example", "name": "Dana"},
    },
}


def credentials() -> tuple[str, str]:
    read = lambda name: open(os.path.join(CREDENTIALS, name)).read().strip()
    return read("client_id"), read("client_secret")


def accept(challenge: str, user: dict) -> str:
    """POST /login/accept as the InboundApp; returns where to send the browser."""
    client_id, client_secret = credentials()
    body = {"login_challenge": challenge, **{k: v for k, v in user.items() if k != "password"}}
    basic = base64.b64encode(
        f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}".encode()
    ).decode()
    request = urllib.request.Request(
        f"{ISSUER}/login/accept",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Basic {basic}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["redirect_to"]


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme sign-in</title></head>
<body><h1>Sign in to Acme</h1>{error}
<form method="post" action="/inbound-login">
<input type="hidden" name="login_challenge" value="{challenge}">
<label>Name <input name="username" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form></body></html>"""


class LoginPage(http.server.BaseHTTPRequestHandler):
    def page(self, status: int, challenge: str, error: str = "") -> None:
        body = PAGE.format(challenge=html.escape(challenge), error=error).encode()
        self.send_response(status)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        challenge = dict(urllib.parse.parse_qsl(url.query)).get("login_challenge", "")
        if url.path != "/inbound-login" or not challenge:
            self.send_error(404)
            return
        self.page(200, challenge)

    def do_POST(self) -> None:
        length = min(int(self.headers.get("content-length", "0")), 16 * 1024)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        challenge = form.get("login_challenge", "")
        user = USERS.get(form.get("username", ""))
        if user is None or form.get("password") != user["password"]:
            self.page(401, challenge, "<p role=alert>Wrong name or password.</p>")
            return
        try:
            location = accept(challenge, user)
        except urllib.error.HTTPError as e:
            self.page(400, challenge, f"<p role=alert>inbound refused the sign-in ({e.code}).</p>")
            return
        self.send_response(303)
        self.send_header("location", location)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write("login-app: " + format % args + "\n")


if __name__ == "__main__":
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "3001"))), LoginPage)
    print(f"listening http://127.0.0.1:{server.server_port}/inbound-login", flush=True)
    server.serve_forever()
