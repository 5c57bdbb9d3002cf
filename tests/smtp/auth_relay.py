"""An SMTP relay that requires AUTH over STARTTLS, for the tests.

aiosmtpd's command line cannot require authentication, so this starts its Controller with
an authenticator. Usage: auth_relay.py HOST PORT MAILDIR CERT KEY LOGIN PASSWORD.
Messages are stored in MAILDIR like the command line's Mailbox handler does.
"""

import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

host, port, maildir, cert, key, login, password = sys.argv[1:8]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == login.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Mailbox(maildir),
    hostname=host,
    port=int(port),
    tls_context=context,
    require_starttls=True,
    authenticator=authenticator,
    auth_required=True,
)
controller.start()
print(f"listening {host}:{port}", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
controller.stop()
