#!/usr/bin/python3
"""Runs a program on a pseudo-terminal, like a person at a keyboard.

Usage: pty_session.py STEPS_JSON PROGRAM [ARG...]

STEPS_JSON is a list of [wait_for, line] pairs: for each, wait until the
text wait_for appears in the program's output (after what the previous step
matched), then type line and Enter. After the last step, read until the
program exits. The transcript (what the terminal showed) is printed on
stdout; the exit status is the program's, or 124 when an awaited text did
not come within 30 seconds (the program is then killed).

Used by the end-to-end tests to drive OpenSSH `sftp`, which reads passwords
from its terminal with echo off: what is typed at such a prompt does not
appear in the transcript.
"""

import json
import os
import pty
import select
import signal
import sys
import time

WAIT = 30.0


def main():
    steps = json.loads(sys.argv[1])
    argv = sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    out = b""
    seen = 0  # output before this offset is already matched

    def read_until(marker, limit):
        nonlocal out
        end = time.time() + limit
        while time.time() < end:
            if marker is not None and marker in out[seen:]:
                return True
            ready, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
        return False

    for wait_for, line in steps:
        marker = wait_for.encode()
        if not read_until(marker, WAIT):
            sys.stdout.write(out.decode("utf-8", "replace"))
            sys.stdout.write("\n[pty_session: timed out waiting for %r]\n" % wait_for)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sys.exit(124)
        seen = out.index(marker, seen) + len(marker)
        os.write(fd, line.encode() + b"\r")
    read_until(None, WAIT)
    end = time.time() + 5
    done, status = os.waitpid(pid, os.WNOHANG)
    while done == 0 and time.time() < end:
        time.sleep(0.05)
        done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode("utf-8", "replace"))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
