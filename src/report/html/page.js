// wsclose post-mortem page. Reads the JSON in #data and draws the timeline, the
// histograms and the drill-down. Strings from the capture reach the page only through
// textContent and canvas text, never as markup.
(function () {
  'use strict';

  var data = JSON.parse(document.getElementById('data').textContent);
  var T = data.timeline;
  var N = T.session.length;
  var COLORS = ['#009E73', '#D55E00', '#E69F00', '#CC79A7', '#56B4E9', '#F0E442', '#999999', '#0072B2'];
  var FLAG_ABNORMAL = 1, FLAG_INEXACT = 2, FLAG_GAP = 4, FLAG_NAMED = 8;
  var SIDES = ['', 'client', 'server'];
  var TCP_END = ['fin', 'rst', 'open'];

  // ---- sessions: columns to typed arrays --------------------------------------------
  var start = new Float64Array(N), end = new Float64Array(N);
  (function () {
    var acc = 0;
    for (var i = 0; i < N; i++) {
      acc += T.start[i];
      start[i] = acc;
      end[i] = acc + T.duration[i];
    }
  })();
  // Session ends per time bin and outcome, of every session (kept and aggregated): mass
  // drops and restarts stand out here at any scale.
  var NBINS = Math.floor(T.span_us / T.bin_us) + 1;
  var ends = [];
  (function () {
    function add(bin, o, n) {
      bin = Math.max(0, Math.min(NBINS - 1, bin));
      if (!ends[bin]) ends[bin] = new Array(COLORS.length).fill(0);
      ends[bin][o] += n;
    }
    for (var i = 0; i < N; i++) add(Math.floor(end[i] / T.bin_us), T.outcome[i], 1);
    var B = T.lanes.outcome.bins;
    for (var b = 0; b + 3 < B.length; b += 4) add(B[b + 1], B[b + 2], B[b + 3]);
  })();
  var endsMax = 0;
  ends.forEach(function (v) {
    var s = 0; for (var k = 0; k < v.length; k++) s += v[k];
    if (s > endsMax) endsMax = s;
  });
  var bySession = new Map();
  for (var i0 = 0; i0 < N; i0++) bySession.set(T.session[i0], i0);
  var highlight = new Uint8Array(N);
  var highlightOn = false;
  var selected = -1;

  function text(i) { return T.dict[i] || ''; }

  // ---- time formatting ---------------------------------------------------------------
  function pad(n, w) { var s = String(n); while (s.length < w) s = '0' + s; return s; }
  function clock(relUs, withDate, digits) {
    var abs = T.t0_us + relUs;
    var ms = Math.floor(abs / 1000);
    var d = new Date(ms);
    var s = pad(d.getUTCHours(), 2) + ':' + pad(d.getUTCMinutes(), 2) + ':' + pad(d.getUTCSeconds(), 2);
    if (digits > 0) {
      var frac = pad(Math.floor(((abs % 1e6) + 1e6) % 1e6), 6).slice(0, digits);
      s += '.' + frac;
    }
    if (withDate) s = d.toISOString().slice(0, 10) + ' ' + s + ' UTC';
    return s;
  }
  function secs(us) {
    var s = us / 1e6, a = Math.abs(s);
    if (a >= 100) return s.toFixed(0) + ' s';
    if (a >= 10) return s.toFixed(1) + ' s';
    if (a >= 1) return s.toFixed(2) + ' s';
    if (a >= 0.001) return s.toFixed(3) + ' s';
    return s.toFixed(6) + ' s';
  }

  // ---- lanes and rows ----------------------------------------------------------------
  var MAX_ROWS = 400;
  var LANE_HEAD = 16, STRIP = 18, LANE_GAP = 6, AXIS = 26, ENDS = 38;
  // The lanes scroll below the time axis and the strip of session ends.
  var TOP = AXIS + ENDS;
  var mode = 'server';
  var layout = null;

  function laneOf(i) {
    return mode === 'outcome' ? T.outcome[i] : T.lanes[mode].of[i];
  }

  // Min-heap of [end, row] for packing bars into rows.
  function heapPush(h, e, r) {
    h.push([e, r]);
    var k = h.length - 1;
    while (k > 0) {
      var p = (k - 1) >> 1;
      if (h[p][0] <= h[k][0]) break;
      var t = h[p]; h[p] = h[k]; h[k] = t; k = p;
    }
  }
  function heapPop(h) {
    var top = h[0], last = h.pop();
    if (h.length > 0) {
      h[0] = last;
      var k = 0;
      for (;;) {
        var l = 2 * k + 1, r = l + 1, m = k;
        if (l < h.length && h[l][0] < h[m][0]) m = l;
        if (r < h.length && h[r][0] < h[m][0]) m = r;
        if (m === k) break;
        var t = h[m]; h[m] = h[k]; h[k] = t; k = m;
      }
    }
    return top;
  }

  function buildLayout() {
    var L = T.lanes[mode];
    var nl = L.labels.length;
    var members = [];
    for (var l = 0; l < nl; l++) members.push([]);
    for (var i = 0; i < N; i++) {
      var li = laneOf(i);
      if (li < nl) members[li].push(i);
    }
    var bins = [];
    for (var l2 = 0; l2 < nl; l2++) bins.push(null);
    var B = L.bins;
    for (var b = 0; b + 3 < B.length; b += 4) {
      var lane = B[b];
      if (!bins[lane]) bins[lane] = { byBin: new Map(), total: 0, max: 0 };
      var e = bins[lane].byBin.get(B[b + 1]);
      if (!e) { e = new Array(COLORS.length).fill(0); bins[lane].byBin.set(B[b + 1], e); }
      e[B[b + 2]] += B[b + 3];
      bins[lane].total += B[b + 3];
    }
    bins.forEach(function (x) {
      if (!x) return;
      x.byBin.forEach(function (v) {
        var s = 0; for (var k = 0; k < v.length; k++) s += v[k];
        if (s > x.max) x.max = s;
      });
    });
    var row = new Int32Array(N);
    var lanes = [];
    var totalRows = 0;
    for (var l3 = 0; l3 < nl; l3++) {
      if (L.sessions[l3] === 0) continue;
      var m = members[l3].slice().sort(function (a, b) { return start[a] - start[b] || a - b; });
      var heap = [], rows = 0;
      for (var j = 0; j < m.length; j++) {
        var s = m[j], r;
        if (heap.length && heap[0][0] <= start[s]) r = heapPop(heap)[1];
        else r = rows++;
        heapPush(heap, end[s], r);
        row[s] = r % MAX_ROWS;
      }
      rows = Math.min(rows, MAX_ROWS);
      var byRow = [];
      for (var r2 = 0; r2 < rows; r2++) byRow.push([]);
      for (var j2 = 0; j2 < m.length; j2++) byRow[row[m[j2]]].push(m[j2]);
      lanes.push({ index: l3, label: L.labels[l3], total: L.sessions[l3], members: m, rows: rows,
        byRow: byRow, bins: bins[l3] });
      totalRows += rows;
    }
    layout = { lanes: lanes, row: row, totalRows: totalRows };
    placeLanes();
  }

  var canvas = document.getElementById('tl');
  var ctx = canvas.getContext('2d');
  var cssW = 0, cssH = 0, rowH = 6, scrollY = 0, contentH = 0;

  // The canvas is as tall as its lanes need, between MIN_H and MAX_H (then it scrolls).
  var MIN_H = 140, MAX_H = 560;
  function fitHeight() {
    var fixed = 0;
    layout.lanes.forEach(function (ln) { fixed += LANE_HEAD + LANE_GAP + (ln.bins ? STRIP : 0); });
    var want = TOP + 4 + fixed + Math.max(1, layout.totalRows) * 10;
    var h = Math.max(MIN_H, Math.min(MAX_H, want));
    if (Math.abs(h - cssH) > 1) {
      canvas.style.height = h + 'px';
      resize();
    }
  }

  function placeLanes() {
    var avail = cssH - TOP - 4;
    var fixed = 0;
    layout.lanes.forEach(function (ln) { fixed += LANE_HEAD + LANE_GAP + (ln.bins ? STRIP : 0); });
    var rows = Math.max(1, layout.totalRows);
    rowH = Math.max(2, Math.min(10, Math.floor((avail - fixed) / rows)));
    var y = 0;
    layout.lanes.forEach(function (ln) {
      ln.y = y;
      ln.rowsY = y + LANE_HEAD;
      ln.stripY = ln.rowsY + ln.rows * rowH + 2;
      y = ln.stripY + (ln.bins ? STRIP : 0) + LANE_GAP;
    });
    contentH = y;
    clampScroll();
  }
  function clampScroll() {
    scrollY = Math.max(0, Math.min(scrollY, contentH - (cssH - TOP)));
  }

  // ---- view (time window, µs since t0) -----------------------------------------------
  var full = Math.max(T.span_us, 1000);
  var pad0 = full * 0.01;
  var view = { a: -pad0, b: full + pad0 };
  var MIN_SPAN = 20;

  function xOf(t) { return (t - view.a) / (view.b - view.a) * cssW; }
  function tOf(x) { return view.a + x / cssW * (view.b - view.a); }
  function setView(a, b) {
    var span = Math.max(MIN_SPAN, b - a);
    var maxSpan = full + 2 * pad0;
    if (span > maxSpan) { a = -pad0; span = maxSpan; }
    a = Math.max(-pad0, Math.min(a, full + pad0 - span));
    view.a = a; view.b = a + span;
    schedule();
  }
  function zoom(f, x) {
    var t = tOf(x === undefined ? cssW / 2 : x);
    setView(t - (t - view.a) * f, t + (view.b - t) * f);
  }

  // ---- drawing -------------------------------------------------------------------------
  var pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; draw(); });
  }

  function resize() {
    var dpr = window.devicePixelRatio || 1;
    cssW = canvas.clientWidth || 1200;
    cssH = canvas.clientHeight || 480;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (layout) placeLanes();
    schedule();
  }

  var STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5,
    1e6, 2e6, 5e6, 1e7, 15e6, 3e7, 6e7, 12e7, 3e8, 6e8, 9e8, 18e8, 36e8, 72e8, 108e8, 216e8,
    864e8, 1728e8, 6048e8];

  // The ticks of the time axis: (first tick, step, digits of the seconds' fraction).
  function ticks() {
    var span = view.b - view.a;
    var want = span / Math.max(2, cssW / 110);
    var step = STEPS[STEPS.length - 1];
    for (var k = 0; k < STEPS.length; k++) if (STEPS[k] >= want) { step = STEPS[k]; break; }
    var digits = step >= 1e6 ? 0 : step >= 1e3 ? 3 : 6;
    var abs0 = T.t0_us + view.a;
    return [Math.ceil(abs0 / step) * step - T.t0_us, step, digits];
  }

  function drawGrid() {
    var tk = ticks();
    ctx.strokeStyle = '#ececf1';
    for (var t = tk[0]; t <= view.b; t += tk[1]) {
      var x = Math.round(xOf(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, AXIS); ctx.lineTo(x, cssH); ctx.stroke();
    }
  }

  function drawAxis() {
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, cssW, AXIS);
    var tk = ticks();
    ctx.strokeStyle = '#b9b9c4';
    ctx.fillStyle = '#5b5b66';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    for (var t = tk[0]; t <= view.b; t += tk[1]) {
      var x = Math.round(xOf(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, AXIS - 6); ctx.lineTo(x, AXIS); ctx.stroke();
      ctx.fillText(clock(t, false, tk[2]), x + 3, AXIS / 2 - 1);
    }
    ctx.strokeStyle = '#b9b9c4';
    ctx.beginPath(); ctx.moveTo(0, AXIS - 0.5); ctx.lineTo(cssW, AXIS - 0.5); ctx.stroke();
  }

  function drawMarkers(i, y, h, x0, x1) {
    var base = start[i];
    ctx.fillStyle = '#1b1b1f';
    ctx.strokeStyle = '#1b1b1f';
    var cc = T.close_at_c[i], cs = T.close_at_s[i];
    var tri = Math.min(4, h / 2);
    if (cc >= 0) {
      var xc = xOf(base + cc);
      ctx.beginPath(); ctx.moveTo(xc - tri, y + h); ctx.lineTo(xc + tri, y + h); ctx.lineTo(xc, y + h - 2 * tri); ctx.closePath(); ctx.fill();
    }
    if (cs >= 0) {
      var xs = xOf(base + cs);
      ctx.beginPath(); ctx.moveTo(xs - tri, y); ctx.lineTo(xs + tri, y); ctx.lineTo(xs, y + 2 * tri); ctx.closePath(); ctx.fill();
    }
    var te = T.tcp_end_at[i];
    if (te >= 0) {
      var xt = Math.round(xOf(base + te)) + 0.5;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      if (T.tcp_end[i] === 1) {
        var r = Math.min(3.5, h / 2);
        ctx.moveTo(xt - r, y + h / 2 - r); ctx.lineTo(xt + r, y + h / 2 + r);
        ctx.moveTo(xt - r, y + h / 2 + r); ctx.lineTo(xt + r, y + h / 2 - r);
      } else {
        ctx.moveTo(xt, y - 1); ctx.lineTo(xt, y + h + 1);
      }
      ctx.stroke();
      ctx.lineWidth = 1;
    }
    if (T.flags[i] & FLAG_GAP) {
      ctx.setLineDash([2, 2]);
      ctx.beginPath(); ctx.moveTo(x0, y + h + 0.5); ctx.lineTo(x1, y + h + 0.5); ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  function drawStrip(ln, top) {
    var bw = T.bin_us;
    var max = ln.bins.max || 1;
    ln.bins.byBin.forEach(function (counts, bin) {
      var x0 = xOf(bin * bw), x1 = xOf((bin + 1) * bw);
      if (x1 < 0 || x0 > cssW) return;
      var w = Math.max(1, x1 - x0 - 0.5);
      var y = top + STRIP - 2;
      for (var o = 0; o < counts.length; o++) {
        if (!counts[o]) continue;
        var hh = counts[o] / max * (STRIP - 3);
        ctx.fillStyle = COLORS[o];
        ctx.fillRect(x0, y - hh, w, Math.max(0.5, hh));
        y -= hh;
      }
    });
  }

  function drawEnds() {
    ctx.fillStyle = '#fafafc';
    ctx.fillRect(0, AXIS, cssW, ENDS);
    var bw = T.bin_us, h = ENDS - 14;
    ends.forEach(function (counts, bin) {
      var x0 = xOf(bin * bw), x1 = xOf((bin + 1) * bw);
      if (x1 < 0 || x0 > cssW) return;
      var w = Math.max(1, x1 - x0 - 0.5), y = AXIS + ENDS - 3;
      for (var o = 0; o < counts.length; o++) {
        if (!counts[o]) continue;
        var hh = counts[o] / endsMax * h;
        ctx.fillStyle = COLORS[o];
        ctx.fillRect(x0, y - hh, w, Math.max(0.5, hh));
        y -= hh;
      }
    });
    ctx.fillStyle = '#5b5b66';
    ctx.font = '10px system-ui, sans-serif';
    ctx.textBaseline = 'top';
    ctx.fillText('session ends (max ' + endsMax + ' per ' + secs(T.bin_us) + ')', 4, AXIS + 2);
    ctx.strokeStyle = '#b9b9c4';
    ctx.beginPath(); ctx.moveTo(0, TOP - 0.5); ctx.lineTo(cssW, TOP - 0.5); ctx.stroke();
  }

  function draw() {
    if (!layout) return;
    ctx.clearRect(0, 0, cssW, cssH);
    drawGrid();
    ctx.save();
    ctx.beginPath(); ctx.rect(0, TOP, cssW, cssH - TOP); ctx.clip();
    var top0 = TOP - scrollY;
    var hAll = cssH;
    var markers = rowH >= 5;
    var barH = rowH > 3 ? rowH - 1 : rowH;
    layout.lanes.forEach(function (ln) {
      var ly = top0 + ln.y;
      var bottom = top0 + ln.stripY + (ln.bins ? STRIP : 0);
      if (bottom < TOP || ly > hAll) return;
      ctx.fillStyle = '#f3f3f6';
      ctx.fillRect(0, ly, cssW, LANE_HEAD - 2);
      ctx.fillStyle = '#1b1b1f';
      ctx.font = '600 11px system-ui, sans-serif';
      ctx.textBaseline = 'middle';
      var agg = ln.bins ? ln.bins.total : 0;
      var label = ln.label + ' · ' + ln.total + (ln.total === 1 ? ' session' : ' sessions') +
        (agg ? ' (' + agg + ' aggregated below)' : '');
      ctx.fillText(label, 4, ly + LANE_HEAD / 2 - 1);
      for (var r = 0; r < ln.rows; r++) {
        var y = top0 + ln.rowsY + r * rowH;
        if (y + rowH < TOP || y > hAll) continue;
        var list = ln.byRow[r];
        for (var k = 0; k < list.length; k++) {
          var i = list[k];
          if (end[i] < view.a || start[i] > view.b) continue;
          var x0 = xOf(start[i]), x1 = xOf(end[i]);
          var w = Math.max(1.5, x1 - x0);
          var dim = highlightOn && !highlight[i];
          ctx.globalAlpha = dim ? 0.16 : 1;
          ctx.fillStyle = COLORS[T.outcome[i]] || '#999';
          ctx.fillRect(x0, y, w, barH);
          if (!dim && (highlightOn || i === selected)) {
            ctx.strokeStyle = i === selected ? '#0072B2' : '#1b1b1f';
            ctx.lineWidth = i === selected ? 2 : 1;
            ctx.strokeRect(x0 - 0.5, y - 0.5, w + 1, barH + 1);
            ctx.lineWidth = 1;
          }
          if (markers && w >= 6 && !dim) drawMarkers(i, y, barH, x0, x0 + w);
        }
      }
      ctx.globalAlpha = 1;
      if (ln.bins) drawStrip(ln, top0 + ln.stripY);
    });
    ctx.restore();
    drawEnds();
    drawAxis();
    if (!document.body.hasAttribute('data-ready')) {
      document.body.setAttribute('data-ready-ms', performance.now().toFixed(1));
      document.body.setAttribute('data-ready', '1');
    }
  }

  // ---- hover and selection -----------------------------------------------------------
  var tip = document.getElementById('tip');

  function describe(i) {
    var o = data.outcomes[T.outcome[i]];
    var lines = [];
    lines.push('session ' + T.session[i] + ' · tcp.stream eq ' + T.tcp_stream[i]);
    lines.push(text(T.client[i]) + ' → ' + text(T.server[i]));
    var host = text(T.host[i]), path = text(T.path[i]);
    if (host || path) lines.push(host + path);
    var flags = T.flags[i], extra = [];
    if (flags & FLAG_ABNORMAL) extra.push('abnormal');
    if (flags & FLAG_INEXACT) extra.push('counts may be lower bounds');
    if (flags & FLAG_GAP) extra.push('gap in the capture');
    if (flags & FLAG_NAMED) extra.push('named by a finding');
    lines.push('outcome ' + o + (extra.length ? ' · ' + extra.join(' · ') : '') +
      (T.http_status[i] ? ' · HTTP ' + T.http_status[i] : ''));
    var close = [];
    [['client', T.code_c, T.reason_c, T.close_at_c], ['server', T.code_s, T.reason_s, T.close_at_s]].forEach(function (s) {
      if (s[1][i]) {
        var reason = text(s[2][i]);
        close.push(s[0] + ' ' + s[1][i] + (reason ? ' "' + reason + '"' : '') + ' at +' + secs(s[3][i]));
      }
    });
    lines.push('Close frames: ' + (close.length ? close.join('; ') : 'none'));
    var by = SIDES[T.first_close_by[i]];
    var te = TCP_END[T.tcp_end[i]], teBy = SIDES[T.tcp_end_by[i]];
    lines.push('first Close by ' + (by || 'nobody') + ' · TCP ' + te + (teBy ? ' by ' + teBy : '') +
      (T.tcp_end_at[i] >= 0 ? ' at +' + secs(T.tcp_end_at[i]) : ''));
    lines.push('start ' + clock(start[i], true, 6) + ' · duration ' + secs(T.duration[i]));
    lines.push('messages: client ' + T.messages_c[i] + ', server ' + T.messages_s[i]);
    return lines.join('\n');
  }

  function hit(mx, my) {
    if (!layout || my < AXIS) return null;
    if (my < TOP) {
      var eb = Math.floor(tOf(mx) / T.bin_us);
      return ends[eb] ? { ends: eb, counts: ends[eb] } : null;
    }
    var y = my - TOP + scrollY;
    for (var k = 0; k < layout.lanes.length; k++) {
      var ln = layout.lanes[k];
      if (y < ln.y || y >= ln.stripY + (ln.bins ? STRIP : 0) + LANE_GAP) continue;
      if (ln.bins && y >= ln.stripY) {
        var bin = Math.floor(tOf(mx) / T.bin_us);
        var counts = ln.bins.byBin.get(bin);
        return counts ? { lane: ln, bin: bin, counts: counts } : null;
      }
      var r = Math.floor((y - ln.rowsY) / rowH);
      if (r < 0 || r >= ln.rows) return null;
      var t = tOf(mx), tol = 3 * (view.b - view.a) / cssW;
      var list = ln.byRow[r], best = -1, bestD = Infinity;
      for (var j = 0; j < list.length; j++) {
        var i = list[j];
        var d = t < start[i] ? start[i] - t : t > end[i] ? t - end[i] : 0;
        if (d <= tol && d < bestD) { best = i; bestD = d; }
      }
      return best >= 0 ? { session: best } : null;
    }
    return null;
  }

  function showTip(mx, my, s) {
    tip.textContent = s;
    tip.hidden = false;
    var wrap = canvas.parentNode.getBoundingClientRect();
    var tw = tip.offsetWidth, th = tip.offsetHeight;
    var x = mx + 14, y = my + 14;
    if (x + tw > wrap.width) x = Math.max(0, mx - tw - 14);
    if (y + th > wrap.height) y = Math.max(0, my - th - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }

  function binText(h) {
    var a = h.bin * T.bin_us, b = a + T.bin_us, parts = [], n = 0;
    for (var o = 0; o < h.counts.length; o++) {
      if (h.counts[o]) { parts.push(data.outcomes[o] + ' ' + h.counts[o]); n += h.counts[o]; }
    }
    return h.lane.label + '\n' + n + (n === 1 ? ' aggregated session' : ' aggregated sessions') +
      ' ended between ' + clock(a, false, 3) + ' and ' + clock(b, false, 3) + '\n' + parts.join(', ');
  }

  function endsText(h) {
    var a = h.ends * T.bin_us, b = a + T.bin_us, parts = [], n = 0;
    for (var o = 0; o < h.counts.length; o++) {
      if (h.counts[o]) { parts.push(data.outcomes[o] + ' ' + h.counts[o]); n += h.counts[o]; }
    }
    return n + (n === 1 ? ' session' : ' sessions') + ' ended between ' + clock(a, false, 3) +
      ' and ' + clock(b, false, 3) + '\n' + parts.join(', ');
  }

  var drag = null;
  function pos(ev) {
    var r = canvas.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  }
  canvas.addEventListener('mousemove', function (ev) {
    var p = pos(ev);
    if (drag) {
      var dx = p[0] - drag.x, dy = p[1] - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      var per = (drag.b - drag.a) / cssW;
      view.a = drag.a; view.b = drag.b;
      setView(drag.a - dx * per, drag.b - dx * per);
      scrollY = drag.scroll - dy;
      clampScroll();
      tip.hidden = true;
      return;
    }
    var h = hit(p[0], p[1]);
    if (!h) { tip.hidden = true; return; }
    showTip(p[0], p[1], h.session !== undefined ? describe(h.session) : h.ends !== undefined ? endsText(h) : binText(h));
  });
  canvas.addEventListener('mouseleave', function () { tip.hidden = true; });
  canvas.addEventListener('mousedown', function (ev) {
    var p = pos(ev);
    drag = { x: p[0], y: p[1], a: view.a, b: view.b, scroll: scrollY, moved: false };
    canvas.classList.add('dragging');
  });
  window.addEventListener('mouseup', function (ev) {
    if (!drag) return;
    var moved = drag.moved;
    drag = null;
    canvas.classList.remove('dragging');
    if (moved || ev.target !== canvas) return;
    var p = pos(ev);
    var h = hit(p[0], p[1]);
    if (h && h.session !== undefined) {
      selected = h.session;
      showDrill(T.session[h.session]);
      schedule();
    }
  });
  canvas.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    if (ev.shiftKey) {
      scrollY += ev.deltaY;
      clampScroll();
      schedule();
      return;
    }
    zoom(Math.exp(ev.deltaY * 0.0015), pos(ev)[0]);
  }, { passive: false });
  canvas.tabIndex = 0;
  canvas.addEventListener('keydown', function (ev) {
    var span = view.b - view.a;
    if (ev.key === '+' || ev.key === '=') zoom(0.6);
    else if (ev.key === '-') zoom(1 / 0.6);
    else if (ev.key === '0') setView(-pad0, full + pad0);
    else if (ev.key === 'ArrowLeft') setView(view.a - span * 0.1, view.b - span * 0.1);
    else if (ev.key === 'ArrowRight') setView(view.a + span * 0.1, view.b + span * 0.1);
    else if (ev.key === 'ArrowUp') { scrollY -= 40; clampScroll(); schedule(); }
    else if (ev.key === 'ArrowDown') { scrollY += 40; clampScroll(); schedule(); }
    else return;
    ev.preventDefault();
  });
  document.getElementById('zoom-in').addEventListener('click', function () { zoom(0.6); });
  document.getElementById('zoom-out').addEventListener('click', function () { zoom(1 / 0.6); });
  document.getElementById('zoom-reset').addEventListener('click', function () { setView(-pad0, full + pad0); });
  Array.prototype.forEach.call(document.querySelectorAll('input[name="lanes"]'), function (el) {
    el.addEventListener('change', function () {
      if (!el.checked) return;
      mode = el.value;
      scrollY = 0;
      buildLayout();
      fitHeight();
      schedule();
    });
  });

  // ---- findings: highlight their sessions --------------------------------------------
  var note = document.getElementById('hl-note');
  var activeFinding = -1;
  function setHighlight(index) {
    highlight.fill(0);
    Array.prototype.forEach.call(document.querySelectorAll('.finding'), function (el) {
      el.classList.toggle('active', Number(el.getAttribute('data-index')) === index);
    });
    activeFinding = index;
    if (index < 0) {
      highlightOn = false;
      note.textContent = '';
      schedule();
      return;
    }
    var f = data.findings[index], drawn = 0;
    for (var k = 0; k < f.sessions.length; k++) {
      var i = bySession.get(f.sessions[k]);
      if (i !== undefined) { highlight[i] = 1; drawn++; }
    }
    highlightOn = true;
    note.textContent = f.cause + ': ' + f.sessions_total + (f.sessions_total === 1 ? ' session' : ' sessions') +
      ' highlighted' + (drawn < f.sessions_total ? ' (' + drawn + ' drawn one by one)' : '');
    fillDrillOptions();
    schedule();
  }
  function zoomToHighlight() {
    var a = Infinity, b = -Infinity;
    for (var i = 0; i < N; i++) {
      if (!highlight[i]) continue;
      if (start[i] < a) a = start[i];
      if (end[i] > b) b = end[i];
    }
    if (a > b) return;
    var m = Math.max((b - a) * 0.05, 1000);
    setView(a - m, b + m);
    // Scroll to the first lane that holds a highlighted session.
    for (var k = 0; k < layout.lanes.length; k++) {
      var ln = layout.lanes[k], has = false;
      for (var j = 0; j < ln.members.length && !has; j++) has = highlight[ln.members[j]] === 1;
      if (has) {
        var firstRow = Infinity;
        for (var j2 = 0; j2 < ln.members.length; j2++) {
          if (highlight[ln.members[j2]]) firstRow = Math.min(firstRow, layout.row[ln.members[j2]]);
        }
        scrollY = ln.rowsY + firstRow * rowH - 40;
        clampScroll();
        break;
      }
    }
    schedule();
  }
  Array.prototype.forEach.call(document.querySelectorAll('.finding'), function (el) {
    var idx = Number(el.getAttribute('data-index'));
    el.querySelector('.head').addEventListener('click', function (ev) {
      if (ev.target.tagName === 'BUTTON') return;
      setHighlight(activeFinding === idx ? -1 : idx);
    });
    el.querySelector('button.hl').addEventListener('click', function () {
      setHighlight(idx);
      zoomToHighlight();
      document.getElementById('timeline-section').scrollIntoView({ behavior: 'smooth', block: 'start' });
    });
  });
  document.getElementById('clear-hl').addEventListener('click', function () { setHighlight(-1); });
  document.getElementById('zoom-hl').addEventListener('click', zoomToHighlight);

  // ---- drill-down ----------------------------------------------------------------------
  var drillBy = new Map();
  data.drill.forEach(function (d) { drillBy.set(d.session, d); });
  var select = document.getElementById('drill-select');
  var MAX_OPTIONS = 300;
  function fillDrillOptions() {
    while (select.options.length > 1) select.remove(1);
    var seen = new Set(), list = [];
    var fs = activeFinding >= 0 ? [data.findings[activeFinding]] : data.findings;
    fs.forEach(function (f) {
      f.sessions.forEach(function (s) {
        if (!seen.has(s) && list.length < MAX_OPTIONS) { seen.add(s); list.push([s, f.cause]); }
      });
    });
    list.sort(function (a, b) { return a[0] - b[0]; });
    list.forEach(function (x) {
      var opt = document.createElement('option');
      opt.value = String(x[0]);
      opt.textContent = 'session ' + x[0] + ' (' + x[1] + ')';
      select.appendChild(opt);
    });
  }
  select.addEventListener('change', function () {
    if (!select.value) return;
    var s = Number(select.value);
    var i = bySession.get(s);
    selected = i === undefined ? -1 : i;
    showDrill(s);
    schedule();
  });

  function row(cells) {
    var tr = document.createElement('tr');
    cells.forEach(function (c) {
      var td = document.createElement('td');
      td.textContent = c === null || c === undefined ? '' : String(c);
      tr.appendChild(td);
    });
    return tr;
  }

  function showDrill(s) {
    var head = document.getElementById('drill-head');
    var body = document.querySelector('#drill-table tbody');
    while (body.firstChild) body.removeChild(body.firstChild);
    var i = bySession.get(s);
    head.textContent = i === undefined ? 'session ' + s + ' (aggregated: not drawn one by one)' : describe(i);
    var d = drillBy.get(s);
    if (d) {
      if (d.omitted) body.appendChild(row(['', '', '', '(' + d.omitted + ' earlier events not kept)', '', '', '', '', '']));
      d.events.forEach(function (e) {
        var what = e[7] ? e[7] : e[8];
        var frame = e[2] === 'frame';
        body.appendChild(row([(e[0] / 1e6).toFixed(6), e[9], e[1], e[2], e[3], frame ? String(e[4]) : '',
          frame ? e[5] : (e[2] === 'gap' ? e[5] : ''), e[6], what]));
      });
    } else if (i !== undefined) {
      // No frame ring for this session: its record's own moments.
      var ev = [[0, '', 'first packet', '', '', '', '', '']];
      if (T.close_at_c[i] >= 0) ev.push([T.close_at_c[i], 'client', 'frame', 'close', '', '', T.code_c[i], text(T.reason_c[i])]);
      if (T.close_at_s[i] >= 0) ev.push([T.close_at_s[i], 'server', 'frame', 'close', '', '', T.code_s[i], text(T.reason_s[i])]);
      if (T.tcp_end_at[i] >= 0) ev.push([T.tcp_end_at[i], SIDES[T.tcp_end_by[i]], TCP_END[T.tcp_end[i]], '', '', '', '', '']);
      ev.push([T.duration[i], '', 'last packet', '', '', '', '', '']);
      ev.sort(function (a, b) { return a[0] - b[0]; });
      ev.forEach(function (e) { body.appendChild(row([(e[0] / 1e6).toFixed(6), ''].concat(e.slice(1)))); });
      body.appendChild(row(['', '', '', '(the frames before the end were not kept for this session: its record\'s moments are shown)', '', '', '', '', '']));
    }
    if (i !== undefined) select.value = select.querySelector('option[value="' + s + '"]') ? String(s) : '';
  }

  // ---- histograms ----------------------------------------------------------------------
  function fmtVal(v, seconds) {
    if (seconds) return secs(v * 1e6);
    if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (v >= 1e4) return (v / 1e3).toFixed(0) + 'k';
    return String(Math.round(v));
  }
  function drawHist(fig) {
    var d = data.distributions[Number(fig.getAttribute('data-index'))];
    var cv = fig.querySelector('canvas');
    var dpr = window.devicePixelRatio || 1;
    var w = cv.clientWidth || 380, h = cv.clientHeight || 150;
    cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
    var c = cv.getContext('2d');
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, w, h);
    c.font = '10px system-ui, sans-serif';
    c.fillStyle = '#5b5b66';
    if (!d || d.count === 0) { c.fillText('no values', 8, h / 2); return; }
    var left = 34, bottom = h - 18, top = 8;
    var zw = d.zeros ? 16 : 0;
    var x0 = left + zw + (zw ? 4 : 0), x1 = w - 6;
    var max = d.zeros;
    d.bins.forEach(function (b) { if (b[2] > max) max = b[2]; });
    function yOf(n) { return bottom - (n / max) * (bottom - top); }
    var nb = d.bins.length;
    var bw = nb ? (x1 - x0) / nb : 0;
    var lo = nb ? Math.log(d.bins[0][0]) : 0, hi = nb ? Math.log(d.bins[nb - 1][1]) : 1;
    function xv(v) {
      if (!nb || hi <= lo) return x0 + (x1 - x0) / 2;
      return x0 + (Math.log(Math.max(v, 1e-12)) - lo) / (hi - lo) * (x1 - x0);
    }
    // Findings' intervals.
    data.findings.forEach(function (f) {
      if (!f.mark || f.mark.dist !== d.name) return;
      var a = xv(f.mark.lo), b = xv(f.mark.hi);
      if (b - a < 4) { var m = (a + b) / 2; a = m - 2; b = m + 2; }
      c.fillStyle = 'rgba(0,114,178,0.18)';
      c.fillRect(a, top - 4, b - a, bottom - top + 4);
      c.strokeStyle = '#0072B2';
      c.setLineDash([3, 2]);
      c.beginPath(); c.moveTo(a + 0.5, top - 4); c.lineTo(a + 0.5, bottom); c.moveTo(b - 0.5, top - 4); c.lineTo(b - 0.5, bottom); c.stroke();
      c.setLineDash([]);
      c.fillStyle = '#0072B2';
      c.fillText(f.cause, Math.min(a + 3, w - 70), top + 4);
    });
    c.fillStyle = '#0072B2';
    d.bins.forEach(function (b, k) {
      if (!b[2]) return;
      var y = yOf(b[2]);
      c.fillRect(x0 + k * bw + 0.5, y, Math.max(1, bw - 1), bottom - y);
    });
    if (d.zeros) {
      c.fillStyle = '#999999';
      var yz = yOf(d.zeros);
      c.fillRect(left, yz, zw, bottom - yz);
    }
    c.strokeStyle = '#b9b9c4';
    c.beginPath(); c.moveTo(left, bottom + 0.5); c.lineTo(w - 4, bottom + 0.5); c.stroke();
    c.fillStyle = '#5b5b66';
    c.textBaseline = 'top';
    if (d.zeros) c.fillText('0', left + 4, bottom + 4);
    if (nb) {
      c.fillText(fmtVal(d.bins[0][0], d.seconds), x0, bottom + 4);
      var mid = Math.exp((lo + hi) / 2);
      var t = fmtVal(mid, d.seconds);
      c.fillText(t, (x0 + x1) / 2 - c.measureText(t).width / 2, bottom + 4);
      var e = fmtVal(d.bins[nb - 1][1], d.seconds);
      c.fillText(e, x1 - c.measureText(e).width, bottom + 4);
    }
    c.textBaseline = 'middle';
    c.fillText(String(max), 2, top + 2);
    c.fillText('0', 2, bottom - 4);
  }
  function drawHists() {
    Array.prototype.forEach.call(document.querySelectorAll('figure.dist'), drawHist);
  }

  // ---- start -------------------------------------------------------------------------
  fillDrillOptions();
  var resizeTimer = 0;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { resize(); drawHists(); }, 100);
  });
  cssW = canvas.clientWidth || 1200;
  cssH = canvas.clientHeight || 480;
  buildLayout();
  resize();
  fitHeight();
  drawHists();
})();
