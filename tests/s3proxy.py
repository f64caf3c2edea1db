#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the S3 tests, loopback only.

    s3proxy.py UPSTREAM_PORT PORT_FILE [LIFETIME_SECONDS]

Listens on 127.0.0.1 (a free port, written to PORT_FILE once it listens)
and passes every request to 127.0.0.1:UPSTREAM_PORT unchanged (the Host
header too, which the SigV4 signature covers). Exits by itself after
LIFETIME_SECONDS (default 300), so that a test that dies leaves nothing.

Faults are armed through the proxy itself, by GET requests under /__fault/:

    /__fault/arm?kind=K&count=N[&method=M][&match=S][&arg=A]
        the next N requests (of method M, and whose path and query hold
        the text S, or end with it when S ends with '$', when given) get
        fault K:
          status      answer HTTP A (default 500) with an S3 error body,
                      InternalError (InvalidArgument below 500); the
                      request does not reach the server
          slowdown    answer 503 SlowDown
          cut_reply   forward, then send the headers and only A bytes of the
                      body and close the connection
          drop_reply  forward, then close the connection without answering
                      (the request took effect; its answer is lost)
          cut_request read A bytes of the request body, then close the
                      connection without answering (the request does not
                      reach the server)
          delay       wait A milliseconds, then forward
          flip        forward, then answer with byte A of the body (the
                      last one when it is shorter) inverted: bytes damaged
                      on the way
    /__fault/clear    disarm everything
    /__fault/stats    JSON: {"requests": n, "faults": n, "log": [[method, path, fault], ...],
                      "bytes": {path: body bytes answered to GETs of it}}
    /__fault/reset    disarm everything and zero the counters
"""
import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

UPSTREAM = ("127.0.0.1", int(sys.argv[1]))
PORT_FILE = sys.argv[2]
LIFETIME = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0

lock = threading.Lock()
faults = []  # [kind, count, method, arg, match]
stats = {"requests": 0, "faults": 0, "log": [], "bytes": {}}

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-connection"}


def matches(text, path):
    if text is None:
        return True
    if text.endswith("$"):
        return path.endswith(text[:-1])
    return text in path


def take_fault(method, path):
    with lock:
        stats["requests"] += 1
        for f in faults:
            if f[1] > 0 and (f[2] is None or f[2] == method) and matches(f[4], path):
                f[1] -= 1
                stats["faults"] += 1
                return f[0], f[3]
    return None, None


def error_body(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
            '<Message>%s</Message></Error>' % (code, message)).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def control(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        what = u.path[len("/__fault/"):]
        with lock:
            if what == "arm":
                arg = q.get("arg")
                faults.append([q["kind"], int(q.get("count", "1")), q.get("method"),
                               int(arg) if arg is not None else None, q.get("match")])
            elif what == "clear":
                faults.clear()
            elif what == "reset":
                faults.clear()
                stats.update(requests=0, faults=0, log=[], bytes={})
            body = json.dumps(stats).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_error(self, status, code, message):
        body = error_body(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def cut(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle_any(self):
        if self.path.startswith("/__fault/"):
            return self.control()
        method = self.command
        kind, arg = take_fault(method, self.path)
        with lock:
            stats["log"].append([method, self.path, kind])
        length = int(self.headers.get("Content-Length") or 0)
        if kind == "cut_request":
            self.rfile.read(min(length, arg or 0))
            return self.cut()
        body = self.rfile.read(length) if length else b""
        if kind == "status":
            status = arg or 500
            code = "InternalError" if status >= 500 else "InvalidArgument"
            return self.reply_error(status, code, "injected by s3proxy")
        if kind == "slowdown":
            return self.reply_error(503, "SlowDown", "injected by s3proxy")
        if kind == "delay":
            time.sleep((arg or 0) / 1000.0)
        up = http.client.HTTPConnection(*UPSTREAM, timeout=60)
        try:
            up.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP:
                    up.putheader(k, v)
            up.endheaders(body if body else None)
            r = up.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            return self.reply_error(502, "BadGateway", "upstream: %s" % e)
        finally:
            up.close()
        if kind == "drop_reply":
            return self.cut()
        if kind == "flip" and data:
            at = min(arg or 0, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        if method == "GET":
            key = urllib.parse.urlsplit(self.path).path
            with lock:
                stats["bytes"][key] = stats["bytes"].get(key, 0) + len(data)
        self.send_response_only(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if method == "HEAD":
            self.send_header("Content-Length", r.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method == "HEAD":
            return
        if kind == "cut_reply":
            self.wfile.write(data[:arg or 0])
            return self.cut()
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (a timeout)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = PORT_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, PORT_FILE)
    threading.Timer(LIFETIME, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
