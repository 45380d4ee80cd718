#!/usr/bin/python3
"""A local SMTP server that keeps what it receives, for tests and trials.

Usage: smtp_sink.py PORT DIR

Listens on 127.0.0.1:PORT (aiosmtpd, Debian package python3-aiosmtpd) and
saves each message as DIR/NNNN.eml (raw, as received) plus DIR/NNNN.json
(envelope and decoded headers/body, read back with Python's own e-mail
parser: an implementation independent of the sender's). Recipients whose
address starts with "refuse" are refused (550). Prints "ready" on
stdout once listening; stops on SIGTERM or SIGINT.
"""

import email
import email.policy
import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A way to test a relay that refuses one message but not the others.
        if address.lower().startswith("refuse"):
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
            "date": str(msg["Date"]),
            "auto_submitted": str(msg["Auto-Submitted"]),
            "body": body.get_content() if body is not None else None,
        }
        with self.lock:
            self.count += 1
            name = "%04d" % self.count
        # Written under a temporary name, then renamed: a test polling the
        # folder never reads half a file.
        for ext, data in (("eml", raw), ("json", json.dumps(record).encode("utf-8"))):
            tmp = os.path.join(self.folder, ".%s.%s" % (name, ext))
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, os.path.join(self.folder, "%s.%s" % (name, ext)))
        return "250 Message accepted for delivery"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    controller = Controller(Keep(folder), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
