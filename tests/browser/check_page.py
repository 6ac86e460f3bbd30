#!/usr/bin/env python3
"""Opens wsclose HTML reports in headless Chromium through the DevTools protocol (or in
headless Firefox through WebDriver BiDi, --firefox) and reports, as one JSON object per
page on stdout, what a reader would see: console errors, exceptions, dialogs (a script
from the capture would open one), the DOM's text, the findings' elements, images, the
paint timing, and a screenshot.

    check_page.py [--chromium PATH | --firefox PATH] [--screenshot-dir DIR] [--width W]
                  [--height H] [--interact] [--redraw] [--shot-height H] PAGE.html...

Needs Python `websockets` (asyncio API: 10.x and later). Exit status 0 when every page
loaded and drew (the checks on the results are the caller's), 2 on a failure to drive
the browser.
"""
import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]

# What the page shows, read from the DOM after the page says it has drawn.
PROBE = r"""
(() => {
  const q = (s) => document.querySelector(s);
  const findings = Array.from(document.querySelectorAll('li.finding')).map((li) => ({
    cause: li.querySelector('.cause').textContent,
    title: li.querySelector('.title').textContent,
    sessions: li.querySelector('.sessions-total').textContent,
    severity: li.querySelector('.sev').textContent,
  }));
  const outcomes = Array.from(document.querySelectorAll('#outcomes li')).map((li) => [
    li.querySelector('.token').textContent, li.querySelector('.n').textContent]);
  const paint = {};
  for (const e of performance.getEntriesByType('paint')) paint[e.name] = e.startTime;
  const nav = performance.getEntriesByType('navigation')[0];
  const onAttrs = Array.from(document.querySelectorAll('*')).filter((el) =>
    Array.from(el.attributes).some((a) => a.name.startsWith('on'))).length;
  return {
    text: document.body.innerText,
    total: q('#total-sessions') ? q('#total-sessions').textContent : null,
    findings,
    no_findings: !!q('#no-findings'),
    outcomes,
    images: document.images.length,
    image_tags: Array.from(document.images).map((i) => i.outerHTML.slice(0, 200)),
    elements_with_on_attributes: onAttrs,
    scripts: document.scripts.length,
    paint,
    dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
    load_ms: nav ? nav.loadEventEnd : null,
    ready_ms: Number(document.body.getAttribute('data-ready-ms')),
    canvas_drawn: (() => {
      const c = q('#tl');
      if (!c) return false;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let inked = 0;
      for (let i = 3; i < d.length; i += 4 * 97) if (d[i] > 0) inked++;
      return inked > 0;
    })(),
    html_bytes: document.documentElement.outerHTML.length,
  };
})()
"""


# What a reader does: switch the lanes, highlight each finding, zoom, pan, hover, pick a
# session for the drill-down. Returns what changed, so the caller can check it.
INTERACT = r"""
(() => {
  const out = {};
  const c = document.querySelector('#tl');
  const r = c.getBoundingClientRect();
  const at = (fx, fy) => ({ clientX: r.left + r.width * fx, clientY: r.top + r.height * fy, bubbles: true });
  for (const v of ['client', 'outcome', 'server']) {
    const el = document.querySelector('input[name="lanes"][value="' + v + '"]');
    el.checked = true;
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }
  out.highlights = Array.from(document.querySelectorAll('button.hl')).map((b) => {
    b.click();
    return document.querySelector('#hl-note').textContent;
  });
  c.dispatchEvent(new WheelEvent('wheel', { ...at(0.5, 0.5), deltaY: -300, cancelable: true }));
  c.dispatchEvent(new MouseEvent('mousedown', at(0.5, 0.5)));
  c.dispatchEvent(new MouseEvent('mousemove', at(0.4, 0.45)));
  window.dispatchEvent(new MouseEvent('mouseup', at(0.4, 0.45)));
  let tips = 0;
  for (let y = 0.1; y < 1; y += 0.05) {
    for (let x = 0.0025; x < 1; x += 0.005) {
      c.dispatchEvent(new MouseEvent('mousemove', at(x, y)));
      if (!document.querySelector('#tip').hidden) tips++;
    }
  }
  out.tips = tips;
  const sel = document.querySelector('#drill-select');
  out.drill_options = sel.options.length - 1;
  if (sel.options.length > 1) {
    sel.value = sel.options[1].value;
    sel.dispatchEvent(new Event('change', { bubbles: true }));
  }
  out.drill_rows = document.querySelectorAll('#drill-table tbody tr').length;
  document.querySelector('#clear-hl').click();
  document.querySelector('#zoom-reset').click();
  return out;
})()
"""


# How long the timeline takes to redraw while zooming and panning: 40 wheel and drag steps,
# each awaited to its frame; the median and worst frame in ms.
REDRAW = r"""
(async () => {
  const c = document.querySelector('#tl');
  const r = c.getBoundingClientRect();
  const frame = () => new Promise((ok) => requestAnimationFrame(() => ok()));
  const times = [];
  for (let k = 0; k < 40; k++) {
    const t0 = performance.now();
    const x = r.left + r.width * (0.2 + 0.6 * ((k * 7) % 10) / 10), y = r.top + r.height / 2;
    if (k % 2 === 0) {
      c.dispatchEvent(new WheelEvent('wheel', { clientX: x, clientY: y, deltaY: k < 20 ? -120 : 120, bubbles: true, cancelable: true }));
    } else {
      c.dispatchEvent(new MouseEvent('mousedown', { clientX: x, clientY: y, bubbles: true }));
      c.dispatchEvent(new MouseEvent('mousemove', { clientX: x + 40, clientY: y + 10, bubbles: true }));
      window.dispatchEvent(new MouseEvent('mouseup', { clientX: x + 40, clientY: y + 10, bubbles: true }));
    }
    await frame();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median_ms: times[20], worst_ms: times[39] };
})()
"""


class Cdp:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []
        self.waiting = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.waiting:
                self.waiting.pop(msg["id"]).set_result(msg)
            elif "method" in msg:
                self.events.append(msg)

    async def call(self, method, timeout=30, **params):
        self.next_id += 1
        fut = asyncio.get_event_loop().create_future()
        self.waiting[self.next_id] = fut
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        msg = await asyncio.wait_for(fut, timeout)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    async def wait_event(self, method, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.events:
                if e["method"] == method:
                    return e
            await asyncio.sleep(0.05)
        return None


def page_target(port, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                for t in json.load(r):
                    if t.get("type") == "page":
                        return t["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("no page target")


async def check(chromium, page, shot_dir, width, height, interact, shot_height=4000, redraw=False,
                before_shot=None):
    profile = tempfile.mkdtemp(prefix="wsclose-chromium-")
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        end = time.monotonic() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError("chromium did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.readline())
        url = page_target(port)
        async with websockets.connect(url, max_size=None) as ws:
            cdp = Cdp(ws)
            for domain in ("Runtime", "Log", "Page"):
                await cdp.call(f"{domain}.enable")
            await cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                           deviceScaleFactor=1, mobile=False)
            t0 = time.monotonic()
            await cdp.call("Page.navigate", url="file://" + os.path.abspath(page))
            loaded = await cdp.wait_event("Page.loadEventFired", 60)
            ready = None
            end = time.monotonic() + 30
            while time.monotonic() < end:
                r = await cdp.call("Runtime.evaluate", expression="document.body && document.body.getAttribute('data-ready')",
                                   returnByValue=True)
                ready = r.get("result", {}).get("value")
                if ready == "1":
                    break
                await asyncio.sleep(0.05)
            wall_ready_ms = (time.monotonic() - t0) * 1000
            r = await cdp.call("Runtime.evaluate", expression=PROBE, returnByValue=True)
            if "exceptionDetails" in r:
                raise RuntimeError(f"probe failed: {r['exceptionDetails']}")
            probe = r["result"]["value"]
            if redraw:
                r = await cdp.call("Runtime.evaluate", expression=REDRAW, returnByValue=True, awaitPromise=True)
                probe["redraw"] = r.get("result", {}).get("value")
            if interact:
                r = await cdp.call("Runtime.evaluate", expression=INTERACT, returnByValue=True)
                if "exceptionDetails" in r:
                    probe["interaction_error"] = json.dumps(r["exceptionDetails"])[:2000]
                else:
                    probe["interaction"] = r["result"]["value"]
                # Let the scheduled frames draw (errors in them are collected below).
                await cdp.call("Runtime.evaluate", awaitPromise=True, expression=
                               "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            if before_shot:
                await cdp.call("Runtime.evaluate", expression=before_shot, awaitPromise=True)
                await cdp.call("Runtime.evaluate", awaitPromise=True, expression=
                               "new Promise(r => setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(r)), 300))")
            # A screenshot makes headless Chromium present a frame (and record its paint).
            shot = None
            m = await cdp.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            clip = {"x": 0, "y": 0, "width": width, "height": min(size["height"], shot_height), "scale": 1}
            img = await cdp.call("Page.captureScreenshot", format="png", clip=clip,
                                 captureBeyondViewport=True)
            if shot_dir:
                shot = os.path.join(shot_dir, os.path.splitext(os.path.basename(page))[0] + ".png")
                with open(shot, "wb") as f:
                    f.write(base64.b64decode(img["data"]))
            r = await cdp.call("Runtime.evaluate", returnByValue=True, expression=
                               "Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))")
            probe["paint"] = r["result"]["value"]
            await asyncio.sleep(0.2)
            errors = []
            dialogs = []
            for e in cdp.events:
                m, p = e["method"], e.get("params", {})
                if m == "Runtime.exceptionThrown":
                    errors.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:2000])
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                    errors.append("console." + p["type"] + ": " + json.dumps(p.get("args", []))[:2000])
                elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                    errors.append("log: " + p["entry"].get("text", "")[:2000])
                elif m == "Page.javascriptDialogOpening":
                    dialogs.append(p.get("message", ""))
            cdp.reader.cancel()
            return {
                "page": page,
                "loaded": loaded is not None,
                "ready": ready == "1",
                "wall_ready_ms": round(wall_ready_ms, 1),
                "errors": errors,
                "dialogs": dialogs,
                "screenshot": shot,
                **probe,
            }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def check_firefox(firefox, page, shot_dir, width, height, interact):
    """The same checks in Firefox, over WebDriver BiDi."""
    profile = tempfile.mkdtemp(prefix="wsclose-firefox-")
    port = free_port()
    err = open(os.path.join(profile, "stderr.log"), "w")
    proc = subprocess.Popen(
        [firefox, "--headless", "--no-remote", "--profile", profile,
         f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=err)
    try:
        end = time.monotonic() + 60
        ws = None
        while ws is None:
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/session", max_size=None)
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("firefox did not start")
                await asyncio.sleep(0.2)
        async with ws:
            cdp = Cdp(ws)
            await cdp.call("session.new", capabilities={})
            await cdp.call("session.subscribe", events=["log.entryAdded", "browsingContext.userPromptOpened"])
            tree = await cdp.call("browsingContext.getTree")
            ctx = tree["contexts"][0]["context"]
            await cdp.call("browsingContext.setViewport", context=ctx,
                           viewport={"width": width, "height": height})

            async def ev(expr):
                r = await cdp.call("script.evaluate", expression=f"JSON.stringify({expr})",
                                   target={"context": ctx}, awaitPromise=True)
                if r.get("type") == "exception":
                    raise RuntimeError(json.dumps(r.get("exceptionDetails"))[:2000])
                return json.loads(r["result"]["value"])

            t0 = time.monotonic()
            await cdp.call("browsingContext.navigate", timeout=60, context=ctx,
                           url="file://" + os.path.abspath(page), wait="complete")
            ready = None
            end = time.monotonic() + 30
            while time.monotonic() < end:
                ready = await ev("document.body && document.body.getAttribute('data-ready')")
                if ready == "1":
                    break
                await asyncio.sleep(0.05)
            wall_ready_ms = (time.monotonic() - t0) * 1000
            probe = await ev(PROBE.strip())
            if interact:
                try:
                    probe["interaction"] = await ev(INTERACT.strip())
                except RuntimeError as e:
                    probe["interaction_error"] = str(e)
                await ev("await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
                         .replace("await ", "", 1))
            shot = None
            if shot_dir:
                img = await cdp.call("browsingContext.captureScreenshot", context=ctx, origin="document")
                shot = os.path.join(shot_dir, os.path.splitext(os.path.basename(page))[0] + ".firefox.png")
                with open(shot, "wb") as f:
                    f.write(base64.b64decode(img["data"]))
            await asyncio.sleep(0.2)
            errors, dialogs = [], []
            for e in cdp.events:
                m, p = e["method"], e.get("params", {})
                if m == "log.entryAdded" and p.get("level") in ("error", "warn"):
                    errors.append(f"{p.get('type')}.{p.get('level')}: {p.get('text', '')[:2000]}")
                elif m == "browsingContext.userPromptOpened":
                    dialogs.append(p.get("message", ""))
            cdp.reader.cancel()
            return {"page": page, "browser": "firefox", "loaded": True, "ready": ready == "1",
                    "wall_ready_ms": round(wall_ready_ms, 1), "errors": errors, "dialogs": dialogs,
                    "screenshot": shot, **probe}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--firefox", help="use this Firefox (WebDriver BiDi) instead of Chromium")
    ap.add_argument("--screenshot-dir")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--interact", action="store_true", help="also click, zoom, pan and hover")
    ap.add_argument("--shot-height", type=int, default=4000, help="screenshot at most this tall")
    ap.add_argument("--redraw", action="store_true", help="also time the timeline's redraws while zooming and panning")
    ap.add_argument("--before-shot", help="JavaScript to run before the screenshot (e.g. a click)")
    ap.add_argument("pages", nargs="+")
    a = ap.parse_args()
    ok = True
    for p in a.pages:
        try:
            if a.firefox:
                r = asyncio.run(check_firefox(a.firefox, p, a.screenshot_dir, a.width, a.height, a.interact))
            else:
                r = asyncio.run(check(a.chromium, p, a.screenshot_dir, a.width, a.height, a.interact, a.shot_height, a.redraw,
                                      a.before_shot))
        except Exception as e:  # noqa: BLE001 - reported to the caller as data
            r = {"page": p, "failure": f"{type(e).__name__}: {e}"}
            ok = False
        print(json.dumps(r), flush=True)
    sys.exit(0 if ok else 2)


if __name__ == "__main__":
    main()
