#!/usr/bin/env python3
"""Python `ssl` peer for the corotls C tests.

Every server mode listens on --host (default 127.0.0.1) port 0, prints
exactly one line `PORT <n>` on stdout once listening (flushed), then serves
connections, each in its own thread, until killed.  All stdout lines are
flushed as they are written; diagnostics never go to stdout.

Server modes
  echo      TLS server echoing everything it receives on each connection.
            Per connection it prints, after the handshake:
              conn version=<TLSv1.3|TLSv1.2> cipher=<name> alpn=<proto|-> sni=<name|-> peer=<client CN|->
            or, if the handshake fails:
              handshake-failed reason=<OpenSSL reason or error text>
            and when the connection ends:
              closed how=<close_notify|eof|reset|error|server> bytes=<bytes echoed>
            (close_notify: the peer sent close_notify, answered with ours;
             eof: TCP closed without close_notify; server: ended by --then.)
            Options: --cert F --key F (default: $COROTLS_CERTDIR/leaf.crt,
            leaf.key; COROTLS_CERTDIR defaults to target/certs), --ca F
            (client-cert trust; default <certdir>/ca.crt), --require-client-cert,
            --tls 1.2|1.3 (pin that version), --alpn h2,http/1.1 (server
            preference order), --ciphers STR (TLS 1.2 cipher list),
            --greeting TEXT (sent right after the handshake),
            --then close_notify|eof (after echoing the first chunk: send
            close_notify and close, or close TCP without close_notify).
  garbage   plain TCP: reads what the client sends first (up to 1 s), writes
            `this is not TLS ...` followed by random bytes, closes cleanly.
  silent    accepts and never reads or writes; connections stay open.
  hangup    reads one TLS record (the ClientHello), then closes
            (--rst: close with a TCP reset instead of a FIN).
  midway    reads the ClientHello, runs a real TLS server on it in memory,
            sends only the first --bytes N bytes of the server's first flight
            (default: half of it), then closes.
  sink      TLS server that reads everything the client sends and, at its
            end, prints
              sink bytes=<n> sha256=<hex> how=<close_notify|eof|error>
            (close_notify: answered with ours through unwrap()).
  Non-echo modes print `conn mode=<mode>` per accepted connection (midway
  adds `sent=<n> of=<total>`).

Client mode
  client --port N [--host H] [--ca F] [--sni NAME] [--tls 1.2|1.3]
         [--alpn LIST] [--cert F --key F] [--no-verify] --message TEXT
         [--timeout S]
            Connects, verifies the server (chain against --ca, default
            <certdir>/ca.crt; hostname against --sni when given; --no-verify
            disables both), sends TEXT, reads until as many bytes came back
            (or EOF), prints
              version=<v> cipher=<c> alpn=<p|->
              reply=<text, with \\ and newlines escaped as \\\\ and \\n>
            sends close_notify and exits 0.  On failure prints
            `error <reason>` and exits 1.
"""

import argparse
import os
import socket
import ssl
import sys
import threading

_out_lock = threading.Lock()


def emit(line):
    with _out_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


def certdir():
    return os.environ.get("COROTLS_CERTDIR") or "target/certs"


def cert_path(name):
    return os.path.join(certdir(), name)


def pin_version(ctx, tls):
    if tls is None:
        return
    v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[tls]
    ctx.minimum_version = v
    ctx.maximum_version = v


def error_text(exc):
    reason = getattr(exc, "reason", None)
    if reason:
        detail = getattr(exc, "verify_message", None)
        return "%s: %s" % (reason, detail) if detail else str(reason)
    return (str(exc) or type(exc).__name__).replace("\n", " ")


def listen(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(128)
    emit("PORT %d" % s.getsockname()[1])
    return s


def serve(lsock, handler, args):
    while True:
        try:
            conn, _ = lsock.accept()
        except InterruptedError:
            continue
        t = threading.Thread(target=handler, args=(conn, args), daemon=True)
        t.start()


def close_quietly(s):
    try:
        s.close()
    except OSError:
        pass


def read_record(sock, timeout=5.0):
    """Read one TLS record (or whatever arrives if it is not TLS)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < 5:
            chunk = sock.recv(5 - len(data))
            if not chunk:
                return data
            data += chunk
        if data[0] not in (0x14, 0x15, 0x16, 0x17):
            return data
        need = 5 + int.from_bytes(data[3:5], "big")
        while len(data) < need:
            chunk = sock.recv(need - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


# ------------------------------------------------------------------ echo

def make_server_ctx(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert or cert_path("leaf.crt"),
                        args.key or cert_path("leaf.key"))
    pin_version(ctx, args.tls)
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    if args.require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.ca or cert_path("ca.crt"))

    def on_sni(sslobj, server_name, _ctx):
        sslobj.corotls_sni = server_name
        return None

    ctx.sni_callback = on_sni
    return ctx


def peer_cn(s):
    try:
        cert = s.getpeercert()
    except (ValueError, OSError):
        return "-"
    if not cert:
        return "-"
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return "-"


def echo_handler(raw, args):
    s = args.ctx.wrap_socket(raw, server_side=True,
                             do_handshake_on_connect=False,
                             suppress_ragged_eofs=False)
    try:
        s.do_handshake()
    except (ssl.SSLError, OSError) as e:
        emit("handshake-failed reason=%s" % error_text(e))
        close_quietly(s)
        return
    emit("conn version=%s cipher=%s alpn=%s sni=%s peer=%s" % (
        s.version(), s.cipher()[0], s.selected_alpn_protocol() or "-",
        getattr(s, "corotls_sni", None) or "-", peer_cn(s)))
    total = 0
    how = "error"
    try:
        if args.greeting:
            s.sendall(args.greeting.encode())
        while True:
            data = s.recv(65536)
            if not data:
                how = "close_notify"
                try:
                    s.unwrap()
                except (ssl.SSLError, OSError):
                    pass
                break
            s.sendall(data)
            total += len(data)
            if args.then == "close_notify":
                how = "server"
                try:
                    s.unwrap()
                except (ssl.SSLError, OSError):
                    pass
                break
            if args.then == "eof":
                how = "server"
                break
    except ssl.SSLEOFError:
        how = "eof"
    except ConnectionResetError:
        how = "reset"
    except (ssl.SSLError, OSError):
        how = "error"
    emit("closed how=%s bytes=%d" % (how, total))
    close_quietly(s)


def sink_handler(raw, args):
    import hashlib
    s = args.ctx.wrap_socket(raw, server_side=True,
                             suppress_ragged_eofs=False)
    h = hashlib.sha256()
    n = 0
    how = "error"
    try:
        while True:
            data = s.recv(1 << 20)
            if not data:
                how = "close_notify"
                try:
                    s.unwrap()
                except (ssl.SSLError, OSError):
                    pass
                break
            h.update(data)
            n += len(data)
    except ssl.SSLEOFError:
        how = "eof"
    except (ssl.SSLError, OSError):
        how = "error"
    emit("sink bytes=%d sha256=%s how=%s" % (n, h.hexdigest(), how))
    close_quietly(s)


# ------------------------------------------------------------ raw modes

def garbage_handler(conn, args):
    emit("conn mode=garbage")
    try:
        conn.settimeout(1.0)
        try:
            conn.recv(65536)
        except socket.timeout:
            pass
        conn.settimeout(5.0)
        conn.sendall(b"this is not TLS, just garbage\r\n" + os.urandom(512))
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    close_quietly(conn)


_silent = []


def silent_handler(conn, args):
    emit("conn mode=silent")
    _silent.append(conn)  # keep it open, never touch it


def hangup_handler(conn, args):
    emit("conn mode=hangup")
    read_record(conn)
    if args.rst:
        import struct
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    close_quietly(conn)


def midway_handler(conn, args):
    hello = read_record(conn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = args.ctx.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(hello)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError:
        pass
    flight = outgoing.read()
    n = args.bytes if args.bytes is not None else len(flight) // 2
    n = max(0, min(n, len(flight)))
    emit("conn mode=midway sent=%d of=%d" % (n, len(flight)))
    try:
        conn.sendall(flight[:n])
    except OSError:
        pass
    close_quietly(conn)


# ---------------------------------------------------------------- client

def run_client(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    pin_version(ctx, args.tls)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    if args.no_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(args.ca or cert_path("ca.crt"))
        ctx.check_hostname = args.sni is not None
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    msg = (args.message or "").encode()
    try:
        raw = socket.create_connection((args.host, args.port),
                                       timeout=args.timeout)
        s = ctx.wrap_socket(raw, server_hostname=args.sni,
                            suppress_ragged_eofs=False)
        emit("version=%s cipher=%s alpn=%s" % (
            s.version(), s.cipher()[0], s.selected_alpn_protocol() or "-"))
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            try:
                chunk = s.recv(65536)
            except ssl.SSLEOFError:
                break
            if not chunk:
                break
            got += chunk
        text = got.decode("utf-8", "replace")
        emit("reply=" + text.replace("\\", "\\\\").replace("\n", "\\n"))
        try:
            s.unwrap()
        except (ssl.SSLError, OSError):
            pass
        close_quietly(s)
    except (ssl.SSLError, OSError) as e:
        emit("error %s" % error_text(e))
        return 1
    return 0


def main(argv):
    p = argparse.ArgumentParser(description="TLS peer for corotls tests")
    p.add_argument("mode", choices=["echo", "client", "garbage", "silent",
                                    "hangup", "midway", "sink"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--require-client-cert", action="store_true")
    p.add_argument("--tls", choices=["1.2", "1.3"])
    p.add_argument("--alpn")
    p.add_argument("--ciphers")
    p.add_argument("--greeting")
    p.add_argument("--then", choices=["close_notify", "eof"])
    p.add_argument("--sni")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--message")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--bytes", type=int)
    p.add_argument("--rst", action="store_true")
    args = p.parse_args(argv)

    if args.mode == "client":
        if args.port is None:
            p.error("client mode needs --port")
        return run_client(args)

    if args.mode in ("echo", "midway", "sink"):
        args.ctx = make_server_ctx(args)
    handler = {
        "echo": echo_handler,
        "garbage": garbage_handler,
        "silent": silent_handler,
        "hangup": hangup_handler,
        "midway": midway_handler,
        "sink": sink_handler,
    }[args.mode]
    lsock = listen(args.host)
    try:
        serve(lsock, handler, args)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
