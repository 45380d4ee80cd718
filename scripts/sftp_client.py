#!/usr/bin/python3
"""Paramiko driver for the SFTP end-to-end tests.

Connects once, runs a list of operations given as JSON on the command line,
and prints one JSON object per operation on stdout:
{"op": ..., "ok": true, "result": ...} or {"op": ..., "ok": false, "error": ...}.
With --no-auth N: handshake only, then wait up to N seconds for the server
to close the connection. Authentication failures print {"op": "auth", "ok": false, "error": ..., "seconds": ...}
and exit with status 3.
With --interactive JSON (a list of rounds, each a list of answers):
keyboard-interactive authentication; each round of prompts the server sends
is answered with the next list (rounds past the last one with empty
strings), and the auth line carries "rounds": [{"name", "instructions",
"prompts": [[text, echo], ...]}, ...], what the server asked.

Operations (each a JSON list: name then arguments):
  ["ls", path]                     names, sorted (listdir: needs EOF at the end)
  ["ls_long", path]                longname of every entry
  ["put", path, text]              upload a small text
  ["put_size", path, n]            upload n pseudo-random bytes, confirm the size;
                                   result = sha256
  ["put_partial", path, n]         write n bytes, print PARTIAL, then wait forever
                                   (the test kills the process or the server)
  ["get", path]                    download, result = {"size", "sha256", "text" (if short)}
  ["stat", path]                   {"size", "mode"}
  ["rm", path] ["mkdir", path] ["rmdir", path]
  ["rename", a, b] ["posix_rename", a, b]
  ["symlink", target, link] ["readlink", path]
  ["chmod", path, mode] ["utime", path]
  ["normalize", path]
  ["wait_closed", seconds]         wait until the server closes the connection
  ["hold", seconds]                keep the session open
"""

import argparse
import hashlib
import json
import os
import random
import socket
import sys
import time

import paramiko


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def data_of(n, seed=7):
    rnd = random.Random(seed)
    return bytes(rnd.getrandbits(8) for _ in range(min(n, 1 << 16))) * (n // (1 << 16) + 1)


def load_key(path):
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(path)
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError("cannot read key %s" % path)


def run_op(sftp, transport, op):
    name, args = op[0], op[1:]
    if name == "ls":
        return sorted(sftp.listdir(args[0]))
    if name == "ls_long":
        return sorted(a.longname for a in sftp.listdir_attr(args[0]))
    if name == "put":
        with sftp.open(args[0], "wb") as f:
            f.write(args[1].encode("utf-8"))
        return None
    if name == "put_size":
        # Unpipelined: each write waits for its status, so a refusal shows
        # the server's own message (paramiko drops errors of pipelined
        # writes and of CLOSE); then confirm the size like sftp.put() does.
        data = data_of(int(args[1]))[: int(args[1])]
        with sftp.open(args[0], "wb") as f:
            for i in range(0, len(data), 32768):
                f.write(data[i : i + 32768])
        size = sftp.stat(args[0]).st_size
        if size != len(data):
            raise IOError("size mismatch: %d != %d" % (size, len(data)))
        return hashlib.sha256(data).hexdigest()
    if name == "put_partial":
        f = sftp.open(args[0], "wb")
        data = data_of(int(args[1]))[: int(args[1])]
        for i in range(0, len(data), 32768):
            f.write(data[i : i + 32768])
        f.flush()
        # Make sure the server has handled every write so far.
        f.stat()
        emit({"op": "put_partial", "ok": True, "result": "PARTIAL"})
        while transport.is_active():
            time.sleep(0.05)
        raise EOFError("server closed the connection")
    if name == "get":
        with sftp.open(args[0], "rb") as f:
            f.prefetch()
            data = f.read()
        res = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        if len(data) <= 4096:
            res["text"] = data.decode("utf-8", "replace")
        return res
    if name == "stat":
        st = sftp.stat(args[0])
        return {"size": st.st_size, "mode": st.st_mode}
    if name == "rm":
        return sftp.remove(args[0])
    if name == "mkdir":
        return sftp.mkdir(args[0])
    if name == "rmdir":
        return sftp.rmdir(args[0])
    if name == "rename":
        return sftp.rename(args[0], args[1])
    if name == "posix_rename":
        return sftp.posix_rename(args[0], args[1])
    if name == "symlink":
        return sftp.symlink(args[0], args[1])
    if name == "readlink":
        return sftp.readlink(args[0])
    if name == "chmod":
        return sftp.chmod(args[0], int(args[1]))
    if name == "utime":
        return sftp.utime(args[0], (1700000000, 1700000000))
    if name == "normalize":
        return sftp.normalize(args[0])
    if name == "wait_closed":
        start = time.time()
        while transport.is_active() and time.time() - start < float(args[0]):
            time.sleep(0.05)
        return {"closed": not transport.is_active(), "seconds": round(time.time() - start, 2)}
    if name == "hold":
        time.sleep(float(args[0]))
        return None
    raise ValueError("unknown operation %r" % name)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--source", help="local address to connect from (127.0.0.x)")
    p.add_argument("--user", required=True)
    p.add_argument("--password")
    p.add_argument("--key")
    p.add_argument("--interactive", metavar="JSON",
                   help="keyboard-interactive: list of rounds, each a list of answers")
    p.add_argument("--no-auth", type=float, metavar="SECONDS",
                   help="complete the SSH handshake, never log in, report when the server closes")
    p.add_argument("ops", help="JSON list of operations")
    a = p.parse_args()
    ops = json.loads(a.ops)

    rounds = []
    answers = json.loads(a.interactive) if a.interactive is not None else []

    def handler(title, instructions, prompts):
        rounds.append({"name": title, "instructions": instructions,
                       "prompts": [[text, bool(echo)] for text, echo in prompts]})
        given = answers[len(rounds) - 1] if len(rounds) <= len(answers) else []
        return [given[i] if i < len(given) else "" for i in range(len(prompts))]

    source = (a.source, 0) if a.source else None
    sock = socket.create_connection((a.host, a.port), timeout=30, source_address=source)
    transport = paramiko.Transport(sock)
    started = time.time()
    try:
        transport.start_client(timeout=30)
        # "seconds" below times the authentication exchange alone.
        started = time.time()
        if a.no_auth is not None:
            while transport.is_active() and time.time() - started < a.no_auth:
                time.sleep(0.05)
            emit({"op": "no_auth", "ok": True, "result": {"closed": not transport.is_active(),
                  "seconds": round(time.time() - started, 2)}})
            return
        if a.key:
            transport.auth_publickey(a.user, load_key(a.key))
        elif a.interactive is not None:
            transport.auth_interactive(a.user, handler)
        else:
            transport.auth_password(a.user, a.password or "")
    except (paramiko.AuthenticationException, paramiko.SSHException, EOFError, OSError) as e:
        emit({"op": "auth", "ok": False, "error": "%s: %s" % (type(e).__name__, e),
              "seconds": round(time.time() - started, 3), "rounds": rounds})
        sys.exit(3)
    emit({"op": "auth", "ok": True, "seconds": round(time.time() - started, 3), "rounds": rounds})

    try:
        sftp = paramiko.SFTPClient.from_transport(transport)
    except (paramiko.SSHException, EOFError) as e:
        emit({"op": "sftp", "ok": False, "error": "%s: %s" % (type(e).__name__, e)})
        sys.exit(4)
    # A listing that never ends (no EOF) must fail the test, not hang it.
    sftp.get_channel().settimeout(20)
    for op in ops:
        try:
            res = run_op(sftp, transport, op)
            emit({"op": op[0], "ok": True, "result": res})
        except (IOError, OSError, paramiko.SSHException, EOFError, socket.timeout) as e:
            emit({"op": op[0], "ok": False, "error": "%s: %s" % (type(e).__name__, e)})
    try:
        sftp.close()
        transport.close()
    except Exception:
        pass


if __name__ == "__main__":
    main()
