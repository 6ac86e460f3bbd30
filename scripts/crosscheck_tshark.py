#!/usr/bin/env python3
"""Cross-check wsclose's per-session report against tshark's dissection.

Usage:
    scripts/crosscheck_tshark.py [--wsclose PATH] [--tshark PATH] [--max-mb N] [-v]
                                 [--keylog FILE | --keylog-beside] [--tls-port PORT]...
                                 CAPTURE...

wss://: --keylog FILE gives both tools the key log (wsclose --keylog FILE, tshark
-o tls.keylog_file:FILE); --keylog-beside uses CAPTURE's own NAME.keys; --tls-port P
makes tshark dissect port P as TLS (-d tcp.port==P,tls; 443 needs none). Rows wsclose
reports as `undecrypted` are left out (tshark shows no WebSocket for them either).

For each capture (checked one at a time, never merged) this runs
`wsclose sessions -q CAPTURE` and
`tshark -r CAPTURE -o tcp.reassemble_out_of_order:TRUE -o tcp.desegment_tcp_streams:TRUE
 -Y 'websocket || http' -T json -j ...`, rebuilds per-session counts from the
individual WebSocket frames tshark dissected (JSON keeps several frames of one TCP
segment apart, unlike `-T fields`), matches sessions by tcp.stream and prints one
comparison table per session, then

    crosscheck: N sessions, M fields compared, K mismatches

and exits 0 if K == 0, else 1 (2 if a tool could not be run).

Compared per session: tcp_stream, client, server, http_status, client/server
messages, bytes, pings, pongs, close code and reason per side, first_close_by.
tshark's side is derived with the same rules wsclose documents: a data message
starts with opcode 1/2 and ends with the frame whose FIN is set (continuations are
opcode 0; a new 1/2 frame abandons an unfinished message; a stray continuation is
ignored); bytes = sum of the payload lengths of the frames of completed messages;
close code = status code of the side's first Close frame (1005 if it carries none).
The client is the side that sent the HTTP request with `Upgrade: websocket`.

Close reasons are compared only when they are valid UTF-8 on the wire, i.e. when
tshark shows no U+FFFD (wsclose writes invalid bytes as \\xNN, tshark as U+FFFD);
wsclose escaping bytes tshark shows as valid text is a mismatch. Mismatches on sessions wsclose marks
exact=false are printed as "expected (inexact)" and not counted in K. A session
only one tool reports is a mismatch.

-v adds, for every session with a mismatch, tshark's frame list for that stream
(frame.number, direction, FIN, opcode, payload length, close code) as evidence.

Keep captures small (tshark's JSON output is ~50x the capture size).
Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import csv
import io
import ipaddress
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_WSCLOSE = os.path.join(HERE, "..", "target", "release", "wsclose")

TSHARK_PREFS = [
    "-o", "tcp.reassemble_out_of_order:TRUE",
    "-o", "tcp.desegment_tcp_streams:TRUE",
]
# `-j`: which nodes JSON output expands (children of unlisted subtrees are "filtered").
TSHARK_JSON_FILTER = (
    "frame ip ipv6 tcp http websocket websocket.payload websocket.payload.close"
)

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


# ---------------------------------------------------------------- JSON helpers


class Multi(list):
    """Values of a key that tshark repeated inside one JSON object."""


def _pairs_hook(pairs):
    d: dict = {}
    for k, v in pairs:
        if k in d:
            if isinstance(d[k], Multi):
                d[k].append(v)
            else:
                d[k] = Multi([d[k], v])
        else:
            d[k] = v
    return d


def all_of(v) -> list:
    """A JSON value as a list of its occurrences (repeated keys, or --no-duplicate-keys lists)."""
    if v is None:
        return []
    if isinstance(v, list):
        return list(v)
    return [v]


def first(v, default=None):
    vs = all_of(v)
    return vs[0] if vs else default


def last(v, default=None):
    vs = all_of(v)
    return vs[-1] if vs else default


def find_key(node, key):
    """Every value of `key` anywhere under `node`, in document order."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            for item in all_of(v) if isinstance(v, list) else [v]:
                if k == key:
                    out.append(item)
                if isinstance(item, (dict, list)):
                    out.extend(find_key(item, key))
    elif isinstance(node, list):
        for item in node:
            out.extend(find_key(item, key))
    return out


# ---------------------------------------------------------------- endpoints


def norm_ep(ip: str, port) -> str:
    a = ipaddress.ip_address(ip.strip())
    if a.version == 6:
        return f"[{a.compressed}]:{int(port)}"
    return f"{a}:{int(port)}"


def norm_ep_str(s: str) -> str:
    s = s.strip()
    if not s:
        return ""
    m = re.fullmatch(r"\[(.*)\]:(\d+)", s)
    if m:
        return norm_ep(m.group(1), m.group(2))
    host, _, port = s.rpartition(":")
    try:
        return norm_ep(host, port)
    except ValueError:
        return s


# ---------------------------------------------------------------- tshark side


@dataclass
class WsFrame:
    frame: int
    fin: bool
    opcode: int
    length: int
    masked: bool
    close_code: int | None = None  # status code field, if present
    close_reason: str | None = None


@dataclass
class Side:
    messages: int = 0
    bytes: int = 0
    pings: int = 0
    pongs: int = 0
    close_code: str = ""
    close_reason: str | None = ""
    close_frame: int | None = None
    _msg: int | None = None

    def feed(self, f: WsFrame):
        if f.opcode in (OP_TEXT, OP_BIN):
            self._msg = f.length  # a new message abandons an unfinished one
            if f.fin:
                self._finish()
        elif f.opcode == OP_CONT:
            if self._msg is not None:
                self._msg += f.length
                if f.fin:
                    self._finish()
        elif f.opcode == OP_PING:
            self.pings += 1
        elif f.opcode == OP_PONG:
            self.pongs += 1
        elif f.opcode == OP_CLOSE and self.close_frame is None:
            self.close_frame = f.frame
            self.close_code = str(f.close_code) if f.close_code is not None else "1005"
            self.close_reason = f.close_reason if f.close_reason is not None else ""

    def _finish(self):
        self.messages += 1
        self.bytes += self._msg or 0
        self._msg = None


@dataclass
class TStream:
    stream: int
    client: str | None = None  # endpoint that sent the Upgrade request
    server: str | None = None
    request_frame: int | None = None
    http_status: str = ""
    upgrade_seen: bool = False
    # (frame, src endpoint, dst endpoint, WsFrame)
    frames: list = field(default_factory=list)
    # responses seen: (frame, src, code, request_in)
    responses: list = field(default_factory=list)
    endpoints: set = field(default_factory=set)


def ws_frame_from_layer(frame_no: int, ws: dict) -> WsFrame | None:
    try:
        opcode = int(first(ws.get("websocket.opcode")), 0)
    except (TypeError, ValueError):
        return None
    fin = str(first(ws.get("websocket.fin"), "0")) in ("1", "True", "true")
    masked = str(first(ws.get("websocket.mask"), "0")) in ("1", "True", "true")
    plen = int(first(ws.get("websocket.payload_length"), "0"), 0)
    if plen == 126:
        plen = int(first(ws.get("websocket.payload_length_ext_16"), "0"), 0)
    elif plen == 127:
        plen = int(first(ws.get("websocket.payload_length_ext_64"), "0"), 0)
    f = WsFrame(frame_no, fin, opcode, plen, masked)
    if opcode == OP_CLOSE:
        codes = find_key(ws, "websocket.payload.close.status_code")
        reasons = find_key(ws, "websocket.payload.close.reason")
        if codes:
            f.close_code = int(codes[0], 0)
        f.close_reason = reasons[0] if reasons else ""
    return f


def run_tshark(tshark: str, capture: str, tls: list[str] | None = None) -> dict[int, TStream]:
    cmd = [tshark, "-r", capture, *TSHARK_PREFS, *(tls or []), "-Y", "websocket || http",
           "-T", "json", "-j", TSHARK_JSON_FILTER]
    p = subprocess.run(cmd, capture_output=True)
    err = "\n".join(l for l in p.stderr.decode(errors="replace").splitlines()
                    if "Running as user" not in l)
    text = p.stdout.decode("utf-8", errors="replace").strip()
    if p.returncode != 0:
        # e.g. a capture cut short: tshark still prints what it read
        if not text:
            raise RuntimeError(f"{' '.join(cmd)} failed: {err}")
        sys.stderr.write(f"crosscheck: warning: tshark exited {p.returncode}: {err}\n")
    try:
        packets = json.loads(text, object_pairs_hook=_pairs_hook) if text else []
    except json.JSONDecodeError as e:
        raise RuntimeError(f"cannot parse tshark JSON for {capture}: {e}") from e
    streams: dict[int, TStream] = {}
    for pkt in packets:
        layers = pkt["_source"]["layers"]
        frame_no = int(first(first(layers.get("frame"), {}).get("frame.number")))
        tcp = last(layers.get("tcp"))  # innermost
        if not isinstance(tcp, dict) or "tcp.stream" not in tcp:
            continue
        sid = int(first(tcp["tcp.stream"]))
        ip = last(layers.get("ipv6")) if "ipv6" in layers else None
        ip4 = last(layers.get("ip")) if "ip" in layers else None
        # the innermost network layer: whichever tshark listed last
        keys = list(layers.keys())
        if ip is not None and ip4 is not None:
            net, pre = (ip, "ipv6") if keys.index("ipv6") > keys.index("ip") else (ip4, "ip")
        elif ip is not None:
            net, pre = ip, "ipv6"
        else:
            net, pre = ip4, "ip"
        if not isinstance(net, dict):
            continue
        src = norm_ep(first(net.get(f"{pre}.src")), first(tcp.get("tcp.srcport")))
        dst = norm_ep(first(net.get(f"{pre}.dst")), first(tcp.get("tcp.dstport")))
        st = streams.setdefault(sid, TStream(sid))
        st.endpoints.update((src, dst))
        for http in all_of(layers.get("http")):
            if not isinstance(http, dict):
                continue
            method = first(http.get("http.request.method"))
            if method is None:
                # the method is inside the request-line subtree, which -j may filter
                if any(k.startswith("GET ") for k in http):
                    method = "GET"
                elif http.get("http.request") is not None:
                    method = "?"
            upgrades = [u.lower() for u in all_of(http.get("http.upgrade"))]
            is_ws_upgrade = any("websocket" in [t.strip() for t in u.split(",")]
                                for u in upgrades)
            if http.get("http.request") is not None or method is not None:
                if is_ws_upgrade and not st.upgrade_seen:
                    st.upgrade_seen = True
                    st.client, st.server = src, dst
                    st.request_frame = frame_no
            if http.get("http.response") is not None:
                code = first(http.get("http.response.code"))
                if code is None:
                    for k in http:
                        m = re.match(r"HTTP/\d\.\d (\d{3})", k)
                        if m:
                            code = m.group(1)
                            break
                st.responses.append((frame_no, src, code, first(http.get("http.request_in"))))
        for ws in all_of(layers.get("websocket")):
            if isinstance(ws, dict):
                f = ws_frame_from_layer(frame_no, ws)
                if f is not None:
                    st.frames.append((frame_no, src, dst, f))
    for st in streams.values():
        if st.client is None and st.frames:
            # no Upgrade request seen: guess the client from the masking bit
            for _, src, dst, f in st.frames:
                if f.masked:
                    st.client, st.server = src, dst
                    break
            else:
                _, src, dst, _ = st.frames[0]
                st.client, st.server = dst, src
        if st.request_frame is not None:
            for fno, src, code, req_in in st.responses:
                if src == st.server and (
                    (req_in is not None and int(req_in) == st.request_frame)
                    or (req_in is None and fno > st.request_frame)
                ):
                    st.http_status = str(code) if code is not None else ""
                    break
    return streams


def tshark_view(st: TStream) -> dict:
    c, s = Side(), Side()
    for _, src, _, f in st.frames:
        (c if src == st.client else s).feed(f)
    first_close = ""
    closes = [(side.close_frame, name) for side, name in ((c, "client"), (s, "server"))
              if side.close_frame is not None]
    if closes:
        first_close = min(closes)[1]
    return {
        "tcp_stream": str(st.stream),
        "client": st.client or "",
        "server": st.server or "",
        "http_status": st.http_status,
        "client_messages": str(c.messages),
        "server_messages": str(s.messages),
        "client_bytes": str(c.bytes),
        "server_bytes": str(s.bytes),
        "client_pings": str(c.pings),
        "server_pings": str(s.pings),
        "client_pongs": str(c.pongs),
        "server_pongs": str(s.pongs),
        "first_close_by": first_close,
        "client_close_code": c.close_code,
        "client_close_reason": c.close_reason,
        "server_close_code": s.close_code,
        "server_close_reason": s.close_reason,
        "_client_close_frame": c.close_frame,
        "_server_close_frame": s.close_frame,
    }


def is_ws_session(st: TStream) -> bool:
    return st.upgrade_seen or bool(st.frames)


# ---------------------------------------------------------------- wsclose side


def run_wsclose(wsclose: str, capture: str, keylog: str | None = None) -> list[dict]:
    extra = ["--keylog", keylog] if keylog else []
    p = subprocess.run([wsclose, "sessions", "-q", *extra, capture], capture_output=True)
    if p.returncode not in (0,):
        sys.stderr.write(p.stderr.decode(errors="replace"))
        if p.returncode != 2 or not p.stdout:
            raise RuntimeError(f"wsclose exited {p.returncode} on {capture}")
    return list(csv.DictReader(io.StringIO(p.stdout.decode("utf-8", errors="replace"))))


# ---------------------------------------------------------------- comparison

FIELDS = [
    "tcp_stream", "client", "server", "http_status",
    "client_messages", "server_messages", "client_bytes", "server_bytes",
    "client_pings", "server_pings", "client_pongs", "server_pongs",
    "first_close_by",
    "client_close_code", "client_close_reason",
    "server_close_code", "server_close_reason",
]


@dataclass
class Totals:
    sessions: int = 0
    fields: int = 0
    mismatches: int = 0
    expected: int = 0


def cell(v, width):
    s = "" if v is None else str(v)
    s = s.replace("\n", "\\n").replace("\r", "\\r")
    if len(s) > width:
        s = s[: width - 1] + "…"
    return s.ljust(width)


def compare_session(row: dict | None, st: TStream | None, out, totals: Totals, verbose: bool):
    totals.sessions += 1
    exact = row is None or row.get("exact", "true") == "true"
    bad_label = "MISMATCH" if exact else "expected (inexact)"
    if row is not None:
        head = (f"session {row['session']}  tcp.stream {row['tcp_stream']}  "
                f"{row['client']} -> {row['server']}  exact={row.get('exact')}")
    else:
        head = f"(no wsclose session)  tcp.stream {st.stream}  {st.client} -> {st.server}"
    out.write(f"  {head}\n")
    if row is None or st is None or not is_ws_session(st):
        who = "tshark" if row is None else "wsclose"
        other = "wsclose reports no session" if row is None else (
            "tshark sees no WebSocket/Upgrade on that stream")
        out.write(f"    {bad_label}: only {who} reports this session ({other})\n")
        totals.fields += 1
        if exact:
            totals.mismatches += 1
        else:
            totals.expected += 1
        if verbose and st is not None:
            dump_frames(st, out)
        return
    tv = tshark_view(st)
    out.write(f"    {'field':<20} {'wsclose':<24} {'tshark':<24} status\n")
    any_bad = False
    for f in FIELDS:
        w = row.get(f, "")
        t = tv[f]
        if f in ("client", "server"):
            w = norm_ep_str(w)
        note = ""
        if f.endswith("_close_reason"):
            # tshark shows invalid UTF-8 on the wire as U+FFFD: only then is there
            # nothing to compare (wsclose writes those bytes as \xNN). If tshark's text
            # is valid but wsclose escaped bytes, that is compared (and a mismatch).
            if t is None or "\ufffd" in t:
                out.write(f"    {f:<20} {cell(w, 24)} {cell(t, 24)} skipped (not valid UTF-8)\n")
                continue
        if f == "first_close_by" or f.endswith("_close_code"):
            side = "client" if f.startswith("client") else "server"
            fr = tv.get(f"_{side}_close_frame") if f != "first_close_by" else None
            if fr is not None:
                note = f" (tshark frame {fr})"
        totals.fields += 1
        if w == t:
            status = "ok"
        else:
            any_bad = True
            status = bad_label
            if exact:
                totals.mismatches += 1
            else:
                totals.expected += 1
            if len(w) > 24 or len(t or "") > 24:
                t = t or ""
                at = next((i for i, (a, b) in enumerate(zip(w, t)) if a != b),
                          min(len(w), len(t)))
                note += (f" (wsclose {len(w)} chars, tshark {len(t)} chars, "
                         f"first difference at char {at})")
        out.write(f"    {f:<20} {cell(w, 24)} {cell(t, 24)} {status}{note}\n")
    if f"{tv['client']}" not in st.endpoints or tv["server"] not in st.endpoints:
        out.write("    note: tshark endpoints for this stream: "
                  + ", ".join(sorted(st.endpoints)) + "\n")
    if any_bad:
        miss = [f"{side} {row.get(f'{side}_missing_bytes')}" for side in ("client", "server")
                if row.get(f"{side}_missing_bytes", "0") not in ("", "0")]
        if miss:
            out.write("    note: wsclose reports bytes missing in TCP gaps ("
                      + ", ".join(miss) + "); tshark does not dissect WebSocket frames "
                      "past a gap, so its counts stop there\n")
        if verbose:
            dump_frames(st, out)


def dump_frames(st: TStream, out):
    out.write(f"    tshark frames on tcp.stream {st.stream} (upgrade request in frame "
              f"{st.request_frame}; responses {[(r[0], r[2]) for r in st.responses]}):\n")
    for fno, src, _, f in st.frames:
        d = "C>S" if src == st.client else "S>C"
        extra = ""
        if f.opcode == OP_CLOSE:
            r = f.close_reason or ""
            extra = f" code={f.close_code} reason={(r[:60] + '…') if len(r) > 60 else r!r} ({len(r)} chars)"
        out.write(f"      frame {fno:>6} {d} fin={int(f.fin)} op={f.opcode:<2} "
                  f"mask={int(f.masked)} len={f.length}{extra}\n")


def check_capture(capture: str, args, totals: Totals, out) -> None:
    out.write(f"== {capture}\n")
    size_mb = os.path.getsize(capture) / 1e6
    if size_mb > args.max_mb:
        raise RuntimeError(f"{capture} is {size_mb:.1f} MB, over --max-mb {args.max_mb:g} "
                           "(tshark JSON would need minutes and GBs)")
    keylog = args.keylog
    if args.keylog_beside:
        keylog = os.path.splitext(capture)[0] + ".keys"
    tls = []
    if keylog:
        tls += ["-o", f"tls.keylog_file:{keylog}"]
    for port in args.tls_port:
        tls += ["-d", f"tcp.port=={port},tls"]
    rows = [r for r in run_wsclose(args.wsclose, capture, keylog)
            if r.get("outcome") != "undecrypted"]
    streams = run_tshark(args.tshark, capture, tls)
    before = Totals(**vars(totals))
    by_stream: dict[int, list[dict]] = {}
    for r in rows:
        by_stream.setdefault(int(r["tcp_stream"]), []).append(r)
    seen = set()
    for sid in sorted(by_stream):
        for r in by_stream[sid]:
            compare_session(r, streams.get(sid), out, totals, args.verbose)
        seen.add(sid)
    for sid in sorted(streams):
        if sid not in seen and is_ws_session(streams[sid]):
            compare_session(None, streams[sid], out, totals, args.verbose)
    out.write(f"  -> {totals.sessions - before.sessions} sessions, "
              f"{totals.fields - before.fields} fields compared, "
              f"{totals.mismatches - before.mismatches} mismatches"
              f" ({totals.expected - before.expected} expected, inexact)\n\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Cross-check wsclose sessions against tshark.")
    ap.add_argument("--wsclose", default=os.path.normpath(DEFAULT_WSCLOSE),
                    help="wsclose binary (default: target/release/wsclose)")
    ap.add_argument("--tshark", default="tshark", help="tshark binary")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="dump tshark's frame list for sessions with mismatches")
    ap.add_argument("--max-mb", type=float, default=20.0,
                    help="refuse captures larger than this (default 20)")
    ap.add_argument("--keylog", metavar="FILE",
                    help="TLS key log for both tools (wss:// captures)")
    ap.add_argument("--keylog-beside", action="store_true",
                    help="use each capture's NAME.keys as its key log")
    ap.add_argument("--tls-port", action="append", default=[], metavar="PORT",
                    help="have tshark dissect this TCP port as TLS (repeatable)")
    ap.add_argument("captures", nargs="+", metavar="CAPTURE")
    args = ap.parse_args(argv)
    totals = Totals()
    out = sys.stdout
    try:
        for cap in args.captures:
            check_capture(cap, args, totals, out)
    except (RuntimeError, OSError) as e:
        print(f"crosscheck: error: {e}", file=sys.stderr)
        return 2
    out.write(f"crosscheck: {totals.sessions} sessions, {totals.fields} fields compared, "
              f"{totals.mismatches} mismatches\n")
    return 0 if totals.mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
