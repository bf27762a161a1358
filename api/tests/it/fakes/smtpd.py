"""A real SMTP server for the tests: aiosmtpd (PyPI), not ours.

Serves 127.0.0.1 on a free port, with STARTTLS (`--mode starttls`: the
server refuses MAIL before STARTTLS and AUTH) or implicit TLS (`--mode tls`),
the certificate and key given in PEM files, and AUTH PLAIN/LOGIN checked
against `--username` and the password in the environment variable
SMTPD_PASSWORD. MAIL without a successful AUTH is refused (530).

Writes to stdout, one line each:
  LISTENING <port>
  MAIL <json: mail_from, rcpt_tos, data, tls, login, queue_id>
Ends when its standard input closes (the test process is gone).
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import threading
import uuid
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Record:
    """Writes every accepted message to stdout and gives it a queue id."""

    async def handle_DATA(self, server, session, envelope):
        tls = server.transport.get_extra_info("ssl_object") is not None
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        queue_id = uuid.uuid4().hex
        say("MAIL " + json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": tls,
            "login": login,
            "queue_id": queue_id,
        }))
        return f"250 2.0.0 Ok: queued as {queue_id}"


def authenticator(username, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == username.encode()
              and auth_data.password == password.encode())
        # handled=False: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["starttls", "tls"], required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--username", required=True)
    args = parser.parse_args()
    password = os.environ["SMTPD_PASSWORD"]

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    implicit = args.mode == "tls"
    # Implicit TLS: the connection is encrypted before the greeting, so AUTH
    # needs no STARTTLS first (aiosmtpd's documented setting for SMTPS); it
    # warns about that combination, which is right for SMTPS.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")

    def factory():
        return SMTP(
            Record(),
            hostname="relay.lockers.test",
            tls_context=None if implicit else context,
            require_starttls=not implicit,
            auth_required=True,
            auth_require_tls=not implicit,
            authenticator=authenticator(args.username, password),
        )

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(factory, "127.0.0.1", 0, ssl=context if implicit else None))
    say(f"LISTENING {server.sockets[0].getsockname()[1]}")

    def wait_for_parent():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=wait_for_parent, daemon=True).start()
    loop.run_forever()


if __name__ == "__main__":
    main()
