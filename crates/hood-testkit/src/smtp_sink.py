"""A real SMTP server for Hood's tests: aiosmtpd, recording what it receives.

Started by hood_testkit::smtp::SmtpSink. It listens on a free loopback port,
prints `PORT <n>` once it accepts connections, and appends one JSON line per
event to --events: `connect`, `auth`, `rcpt` (accepted or refused), `message`
(envelope, TLS state, decoded headers, subject and body) and `quit`. Each line
is written before the server answers, so a client that has its reply can read
the record.
"""

import argparse
import asyncio
import json
import logging
import socket
import ssl
import sys
import warnings
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--events", required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--auth-over-plaintext", action="store_true")
    p.add_argument("--refuse", action="append", default=[], metavar="ADDRESS=CODE")
    return p.parse_args()


class Recorder:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, event, **fields):
        fields["event"] = event
        self.file.write(json.dumps(fields) + "\n")
        self.file.flush()


def encrypted(server):
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None


class Handler:
    def __init__(self, recorder, refusals):
        self.recorder = recorder
        self.refusals = refusals

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.refusals.get(address.lower())
        self.recorder.write("rcpt", address=address, refused=code)
        if code is not None:
            status = "4.2.0" if code < 500 else "5.1.1"
            return f"{code} {status} <{address}>: refused by the test server"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        self.recorder.write(
            "message",
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            tls=encrypted(server),
            auth_user=session.auth_data if session.authenticated else None,
            headers=[[name, str(value)] for name, value in msg.items()],
            subject=str(msg["subject"]),
            body=msg.get_content().replace("\r\n", "\n"),
            raw=raw.decode("utf-8", "replace"),
        )
        return "250 2.0.0 Message accepted"

    async def handle_QUIT(self, server, session, envelope):
        self.recorder.write("quit")
        return "221 Bye"


def main():
    args = parse_args()
    # aiosmtpd warns about the test-only settings (AUTH without TLS) and its
    # own deprecations; the tests' output has no use for either.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    recorder = Recorder(args.events)
    refusals = {}
    for item in args.refuse:
        address, code = item.rsplit("=", 1)
        refusals[address.lower()] = int(code)

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    authenticator = None
    if args.auth_user is not None:
        user = args.auth_user.encode()
        password = (args.auth_password or "").encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == user
                and auth_data.password == password
            )
            recorder.write("auth", mechanism=mechanism, ok=ok, tls=encrypted(server))
            if not ok:
                # handled=False: aiosmtpd answers 535 itself.
                return AuthResult(success=False, handled=False)
            return AuthResult(success=True, auth_data=auth_data.login.decode())

    handler = Handler(recorder, refusals)

    class RecordingSMTP(SMTP):
        def connection_made(self, transport):
            if self.transport is None:
                recorder.write("connect")
            super().connection_made(transport)

    def factory():
        return RecordingSMTP(
            handler,
            hostname="mx.hood.test",
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.require_starttls,
            authenticator=authenticator,
            auth_required=authenticator is not None,
            # Implicit TLS is encrypted from the first byte, which aiosmtpd's
            # check (STARTTLS seen) does not know about.
            auth_require_tls=not (args.auth_over_plaintext or args.tls == "implicit"),
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, sock=sock, ssl=context if args.tls == "implicit" else None
        )
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
