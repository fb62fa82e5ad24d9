/* The operator console's run page: the DAG (laid out by dagre, drawn as SVG, pan and zoom),
 * the timeline of every step and attempt, and polling of the run's state while it is not
 * finished. Data comes from executions/console.py (run_state), embedded in the page as
 * JSON and then fetched from <run>/state.json. No network but MC's own. */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var SEGMENT_LABELS = { quota: "quota wait" };
  var SEGMENT_COLOURS = { queued: "#8fb8f0", quota: "#f5d76e", running: "#2e9e5b", backoff: "#f0a030", failed: "#d7373f" };

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function text(parent, x, y, content, attrs) {
    var node = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  function title(parent, content) {
    var node = el("title", {}, parent);
    node.textContent = content;
  }

  function shorten(label, max) {
    return label.length > max ? label.slice(0, max - 1) + "…" : label;
  }

  function ms(value) {
    if (value === null || value === undefined) { return "-"; }
    if (value < 1000) { return value + " ms"; }
    if (value < 60000) { return (value / 1000).toFixed(3) + " s"; }
    var minutes = Math.floor(value / 60000);
    return minutes + " m " + ((value - minutes * 60000) / 1000).toFixed(3) + " s";
  }

  /* --- pan and zoom of an SVG by its viewBox ------------------------------------------ */
  var MIN_SCALE = 0.7;  /* below this text is unreadable: start there, at the top left, and let people pan */
  var MAX_SCALE = 1.15;  /* above this a small graph looks blown up */

  function panZoom(svg, box) {
    var rect = svg.getBoundingClientRect();
    var fit = rect.width && rect.height ? Math.min(rect.width / box[2], rect.height / box[3]) : 1;
    var start = box.slice();
    if (fit < MIN_SCALE) {
      start = [0, 0, rect.width / MIN_SCALE, rect.height / MIN_SCALE];
    } else if (fit > MAX_SCALE) {  /* a small graph: natural size, and a box no taller than it needs */
      svg.parentNode.style.height = Math.ceil(box[3] * MAX_SCALE + 12) + "px";
      start = [0, 0, svg.parentNode.clientWidth / MAX_SCALE, box[3] + 10];
    }
    var view = start.slice();
    function apply() { svg.setAttribute("viewBox", view.join(" ")); }
    apply();
    svg.addEventListener("wheel", function (event) {
      event.preventDefault();
      var rect = svg.getBoundingClientRect();
      var fx = (event.clientX - rect.left) / rect.width;
      var fy = (event.clientY - rect.top) / rect.height;
      var factor = event.deltaY > 0 ? 1.2 : 1 / 1.2;
      var width = view[2] * factor;
      var height = view[3] * factor;
      view = [view[0] + (view[2] - width) * fx, view[1] + (view[3] - height) * fy, width, height];
      apply();
    }, { passive: false });
    var drag = null;
    svg.addEventListener("mousedown", function (event) { drag = { x: event.clientX, y: event.clientY, view: view.slice() }; });
    window.addEventListener("mouseup", function () { drag = null; });
    svg.addEventListener("mousemove", function (event) {
      if (!drag) { return; }
      var rect = svg.getBoundingClientRect();
      var scale = Math.max(view[2] / rect.width, view[3] / rect.height);
      view = [drag.view[0] - (event.clientX - drag.x) * scale, drag.view[1] - (event.clientY - drag.y) * scale, view[2], view[3]];
      apply();
    });
    /* double click: everything, then back to where it started */
    svg.addEventListener("dblclick", function () { view = view.join(" ") === box.join(" ") ? start.slice() : box.slice(); apply(); });
  }

  /* --- the graph ----------------------------------------------------------------------- */
  function nodeLabel(node) {
    var label = shorten(node.id, 22);
    if (node.shards) { label += " ×" + node.shards.total; }
    return label;
  }

  function drawStatusBar(group, x, y, width, height, byStatus, total, colours) {
    var offset = 0;
    Object.keys(colours).forEach(function (status) {
      var count = byStatus[status] || 0;
      if (!count) { return; }
      var w = width * count / total;
      el("rect", { x: x + offset, y: y, width: w, height: height, fill: colours[status], "class": "mc-bar-part", "data-status": status }, group);
      offset += w;
    });
  }

  function drawGraph(container, graph, colours, options) {
    options = options || {};
    var collapsed = graph.collapsed && graph.bands && graph.bands.length;
    var nodes = collapsed ? graph.bands.map(function (band) {
      return { key: band.key, band: band, w: 240, h: 46 };
    }) : graph.nodes.map(function (node) {
      return { key: node.key, node: node, w: 160, h: node.shards ? 38 : 30 };
    });
    var edges = collapsed ? [].concat.apply([], graph.bands.map(function (band) {
      return band.needs.map(function (need) { return { from: need, to: band.key }; });
    })) : graph.edges;
    var g = new dagre.graphlib.Graph();
    /* a collapsed graph is a chain of bands: top to bottom reads better than one long row */
    g.setGraph({ rankdir: collapsed ? "TB" : "LR", nodesep: 12, ranksep: collapsed ? 22 : 42, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(function () { return {}; });
    nodes.forEach(function (n) { g.setNode(n.key, { width: n.w, height: n.h }); });
    edges.forEach(function (e) { if (g.hasNode(e.from) && g.hasNode(e.to)) { g.setEdge(e.from, e.to, { compensation: !!e.compensation }); } });
    dagre.layout(g);

    container.textContent = "";
    var size = g.graph();
    var svg = el("svg", { "class": "mc-dag", "data-nodes": String(nodes.length), "data-collapsed": collapsed ? "true" : "false", preserveAspectRatio: "xMinYMin meet" }, container);
    var edgeLayer = el("g", { "class": "mc-edges" }, svg);
    var nodeLayer = el("g", { "class": "mc-nodes" }, svg);
    var critical = {};
    (options.critical || []).forEach(function (key) { critical[key] = true; });
    g.edges().forEach(function (e) {
      var data = g.edge(e);
      var points = data.points.map(function (p) { return p.x.toFixed(1) + "," + p.y.toFixed(1); });
      el("polyline", { points: points.join(" "), "class": "mc-edge" + (data.compensation ? " mc-comp" : ""), "marker-end": "url(#mc-arrow)" }, edgeLayer);
    });
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: "mc-arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#888" }, marker);

    nodes.forEach(function (n) {
      var box = g.node(n.key);
      var x = box.x - n.w / 2;
      var y = box.y - n.h / 2;
      if (collapsed) {
        var band = n.band;
        var group = el("g", { "class": "mc-node mc-band-node", "data-key": band.key, "data-steps": String(band.steps) }, nodeLayer);
        el("rect", { x: x, y: y, width: n.w, height: n.h, rx: 5, fill: "#f4f5f7" }, group);
        var stages = band.first_stage === band.last_stage ? "stage " + band.first_stage : "stages " + band.first_stage + "–" + band.last_stage;
        text(group, x + 8, y + 16, stages + " · " + band.steps + " steps · click to list");
        drawStatusBar(group, x + 8, y + 24, n.w - 16, 12, band.by_status, band.steps, colours);
        title(group, stages + ": " + Object.keys(band.by_status).map(function (s) { return s + " " + band.by_status[s]; }).join(", "));
        group.addEventListener("click", function () { showBand(band, graph, colours); });
        return;
      }
      var node = n.node;
      var cls = "mc-node" + (node.compensation ? " mc-comp" : "") + (critical[node.key] ? " mc-crit" : "");
      var groupNode = el("g", { "class": cls, "data-key": node.key, "data-status": node.status }, nodeLayer);
      el("rect", { x: x, y: y, width: n.w, height: n.h, rx: 5, fill: colours[node.status] || "#ccc", "class": "mc-node-box" }, groupNode);
      el("rect", { x: x + 4, y: y + 4, width: n.w - 8, height: 22, rx: 3, fill: "rgba(255,255,255,0.6)" }, groupNode);
      text(groupNode, x + 9, y + 19, (node.compensation ? "↺ " : "") + nodeLabel(node));
      if (node.shards) {
        drawStatusBar(groupNode, x + 4, y + 28, n.w - 8, 6, node.shards.by_status, Math.max(node.shards.total, 1), colours);
      }
      title(groupNode, node.id + " (" + node.kind + "): " + node.status + ", " + node.uses + ", attempts " + node.attempts + ", " + ms(node.duration_ms));
      if (options.stepUrl && node.pk) {
        groupNode.style.cursor = "pointer";
        groupNode.addEventListener("click", function () { window.location.href = options.stepUrl.replace("/0/", "/" + node.pk + "/"); });
      }
    });
    panZoom(svg, [0, 0, Math.max(size.width, 200), Math.max(size.height, 120)]);
    document.body.setAttribute("data-graph", "drawn");
    window.mcGraphDrawnAt = performance.now();
    return svg;
  }

  function showBand(band, graph, colours) {
    var panel = document.getElementById("mc-band");
    if (!panel) { return; }
    var members = {};
    band.members.forEach(function (key) { members[key] = true; });
    panel.hidden = false;
    panel.textContent = "";
    var heading = document.createElement("p");
    heading.textContent = (band.first_stage === band.last_stage ? "stage " + band.first_stage : "stages " + band.first_stage + "–" + band.last_stage) + ": " + band.steps + " steps";
    panel.appendChild(heading);
    graph.nodes.forEach(function (node) {
      if (!members[node.key]) { return; }
      var item = document.createElement("span");
      item.className = "mc-badge mc-" + node.status;
      item.style.margin = "2px";
      item.textContent = node.id;
      item.title = node.status + ", " + ms(node.duration_ms);
      panel.appendChild(item);
    });
  }

  function recolour(container, graph, colours) {
    var svg = container.querySelector("svg.mc-dag");
    if (!svg || svg.getAttribute("data-collapsed") === "true") { return false; }
    var shown = svg.querySelectorAll("g.mc-node");
    if (shown.length !== graph.nodes.length) { return false; }
    var byKey = {};
    graph.nodes.forEach(function (node) { byKey[node.key] = node; });
    for (var i = 0; i < shown.length; i++) {
      var node = byKey[shown[i].getAttribute("data-key")];
      if (!node || (node.shards && shown[i].querySelector(".mc-bar-part") === null && Object.keys(node.shards.by_status).length)) { return false; }
      shown[i].setAttribute("data-status", node.status);
      shown[i].querySelector("rect.mc-node-box").setAttribute("fill", colours[node.status] || "#ccc");
    }
    return !graph.nodes.some(function (node) { return node.shards; });
  }

  /* --- the timeline -------------------------------------------------------------------- */
  function niceStep(span) {
    var raw = span / 8;
    var power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (raw <= steps[i] * power) { return steps[i] * power; } }
    return 10 * power;
  }

  function drawTimeline(container, timeline, colours) {
    var rows = timeline.rows;
    var labelWidth = 190;
    var width = Math.max(container.clientWidth - 20, 500);
    var chart = width - labelWidth - 10;
    var rowHeight = rows.length > 300 ? 11 : 18;
    var span = Math.max(timeline.end_ms || 0, timeline.estimate_ms || 0, 1);
    rows.forEach(function (row) { row.segments.forEach(function (s) { span = Math.max(span, s.end || 0); }); });
    var scale = chart / span;
    var height = 24 + rows.length * rowHeight + 6;
    container.textContent = "";
    var svg = el("svg", { width: width, height: height, "class": "mc-gantt", "data-rows": String(rows.length) }, container);
    var tick = niceStep(span);
    for (var t = 0; t <= span; t += tick) {
      var x = labelWidth + t * scale;
      el("line", { x1: x, x2: x, y1: 18, y2: height, stroke: "#e3e5e8" }, svg);
      text(svg, x + 2, 12, ms(t), { "font-size": "10" });
    }
    rows.forEach(function (row, index) {
      var y = 24 + index * rowHeight;
      var group = el("g", { "class": "mc-row" + (row.critical ? " mc-crit-row" : ""), "data-key": row.key, "data-status": row.status }, svg);
      var label = text(group, 4, y + rowHeight - 6, (row.critical ? "◆ " : "") + shorten(row.label, 26), row.critical ? { fill: "#d7373f", "font-weight": "700" } : {});
      if (rows.length > 300) { label.setAttribute("font-size", "9"); }
      title(label, row.label + ": " + row.status + ", actual " + ms(row.actual_ms) + ", plan estimate " + ms(row.estimate_ms) + (row.critical ? ", on the critical path" : ""));
      var firstRun = null;
      row.segments.forEach(function (segment) {
        if (segment.start === null || segment.end === null) { return; }
        var colour = SEGMENT_COLOURS[segment.kind];
        if (segment.kind === "running" && segment.outcome && segment.outcome !== "succeeded") { colour = SEGMENT_COLOURS.failed; }
        if (segment.kind === "running" && !segment.outcome) { colour = colours[row.status] || colour; }
        if (segment.kind === "running" && firstRun === null) { firstRun = segment.start; }
        var bar = el("rect", {
          x: labelWidth + segment.start * scale, y: y + 2, width: Math.max((segment.end - segment.start) * scale, 1.5),
          height: rowHeight - 6, fill: colour, "class": "mc-bar mc-bar-" + segment.kind + (segment.outcome ? " mc-outcome-" + segment.outcome : ""),
          "data-ms": String(segment.end - segment.start)
        }, group);
        title(bar, row.label + (segment.shard !== undefined ? "[" + segment.shard + "]" : "") + " " + (SEGMENT_LABELS[segment.kind] || segment.kind) +
          (segment.attempt ? " attempt " + segment.attempt : "") + (segment.outcome ? " " + segment.outcome : "") +
          ": " + ms(segment.end - segment.start) + " (" + ms(segment.start) + " → " + ms(segment.end) + ")" + (segment.error ? " — " + segment.error : ""));
      });
      if (row.estimate_ms !== null && row.estimate_ms !== undefined && firstRun !== null) {
        var estimate = el("rect", { x: labelWidth + firstRun * scale, y: y + rowHeight - 4, width: Math.max(row.estimate_ms * scale, 1), height: 2, fill: "#555", "class": "mc-estimate" }, group);
        title(estimate, row.label + " plan estimate " + ms(row.estimate_ms) + ", actual " + ms(row.actual_ms));
      }
    });
    container.setAttribute("data-drawn", "true");
    return svg;
  }

  /* --- the run page ---------------------------------------------------------------------- */
  function updateSummary(state) {
    var status = document.getElementById("mc-status");
    if (status) { status.textContent = state.status; status.className = "mc-badge mc-" + state.status; }
    var duration = document.getElementById("mc-duration");
    if (duration) { duration.textContent = ms(state.duration_ms); }
    var counts = document.getElementById("mc-counts");
    if (counts) {
      counts.textContent = "";
      Object.keys(state.counts).forEach(function (key) {
        if (!state.counts[key]) { return; }
        var item = document.createElement("span");
        item.className = "mc-count mc-" + key;
        item.setAttribute("data-status", key);
        item.textContent = key + " " + state.counts[key];
        counts.appendChild(item);
      });
    }
  }

  /* the steps table: the server rendered its rows (which steps, in which order); the cells follow the run */
  function updateSteps(steps) {
    var table = document.getElementById("mc-steps");
    if (!table || !steps) { return; }
    var byPk = {};
    steps.forEach(function (cell) { byPk[cell.pk] = cell; });
    table.querySelectorAll("tbody tr[data-pk]").forEach(function (row) {
      var cell = byPk[row.getAttribute("data-pk")];
      if (!cell) { return; }
      row.setAttribute("data-status", cell.status);
      var badge = row.querySelector(".mc-step-status .mc-badge");
      if (badge) { badge.className = "mc-badge mc-" + cell.status; badge.textContent = cell.status; }
      [["attempts", cell.attempts], ["started", cell.started], ["finished", cell.finished], ["duration", cell.duration]].forEach(function (pair) {
        var td = row.querySelector(".mc-step-" + pair[0]);
        if (td && td.textContent !== pair[1]) { td.textContent = pair[1]; }
      });
      var error = row.querySelector(".mc-step-error");
      if (error) {
        error.textContent = "";
        if (cell.error_code) {
          var code = document.createElement("code");
          code.textContent = cell.error_code;
          error.appendChild(code);
          error.appendChild(document.createTextNode(" " + cell.error));
        }
      }
    });
  }

  function htmlEl(name, attrs, content) {
    var item = document.createElement(name);
    Object.keys(attrs || {}).forEach(function (key) { item.setAttribute(key, attrs[key]); });
    if (content !== undefined) { item.textContent = content; }
    return item;
  }

  function link(parent, href, label) {
    parent.appendChild(document.createTextNode(" · "));
    parent.appendChild(htmlEl("a", { href: href }, label));
  }

  /* the receipt panel: pending until the receipts worker signs it, then verified now on each poll */
  function updateReceipt(receipt) {
    var body = document.getElementById("mc-receipt-body");
    if (!body || !receipt) { return; }
    var signed = receipt.signed ? "true" : "false";
    if (body.getAttribute("data-signed") === signed && body.getAttribute("data-ok") === String(receipt.ok)) { return; }
    body.setAttribute("data-signed", signed);
    body.setAttribute("data-ok", String(receipt.ok));
    body.textContent = "";
    var line = htmlEl("p");
    if (receipt.signed) {
      line.appendChild(htmlEl("span", { id: "mc-receipt-status", "class": "mc-badge mc-succeeded" }, "signed"));
      line.appendChild(document.createTextNode(" #" + receipt.sequence + " by key "));
      line.appendChild(htmlEl("code", {}, receipt.key_id));
      line.appendChild(document.createTextNode(" at " + receipt.signed_at));
    } else {
      line.appendChild(htmlEl("span", { id: "mc-receipt-status", "class": "mc-badge mc-queued" }, "pending"));
      line.appendChild(document.createTextNode(" not signed yet"));
    }
    line.appendChild(document.createTextNode(" · verified now: "));
    line.appendChild(htmlEl("b", { id: "mc-verified", "class": receipt.ok ? "mc-ok" : "mc-bad" }, receipt.ok ? "verified" : "does not verify"));
    link(line, receipt.url, "receipt");
    link(line, receipt.api_url, "API");
    if (receipt.signed) { link(line, receipt.disclosure_url, "disclosure.tgz"); }
    body.appendChild(line);
    var table = htmlEl("table", { "class": "mc-table", id: "mc-checks" });
    var head = htmlEl("tr");
    ["check", "result", "what was looked at"].forEach(function (label) { head.appendChild(htmlEl("th", {}, label)); });
    table.appendChild(htmlEl("thead")).appendChild(head);
    var rows = table.appendChild(htmlEl("tbody"));
    receipt.checks.forEach(function (check) {
      var row = rows.appendChild(htmlEl("tr"));
      row.appendChild(htmlEl("td", {}, check.name));
      row.appendChild(htmlEl("td", { "class": check.ok ? "mc-ok" : "mc-bad" }, check.ok ? "ok" : "FAILED"));
      row.appendChild(htmlEl("td", {}, check.message));
    });
    body.appendChild(table);
  }

  /* a finished run's receipt is signed by the receipts worker shortly after: poll until it is */
  var RECEIPT_POLLS = 60;

  function settled(state) {
    return state.terminal && !(state.receipt && !state.receipt.signed);
  }

  function runPage(root) {
    var state = JSON.parse(document.getElementById("mc-state").textContent);
    var graphBox = document.getElementById("mc-graph");
    var timelineBox = document.getElementById("mc-timeline");
    var stepUrl = root.getAttribute("data-step-url") || "/admin/executions/steprun/0/change/";
    function draw(next, first) {
      updateSummary(next);
      updateSteps(next.steps);
      updateReceipt(next.receipt);
      if (first || !recolour(graphBox, next.graph, next.colours)) {
        drawGraph(graphBox, next.graph, next.colours, { critical: next.timeline.critical_path, stepUrl: stepUrl });
      }
      drawTimeline(timelineBox, next.timeline, next.colours);
    }
    draw(state, true);
    if (settled(state)) { return; }
    var live = document.getElementById("mc-live");
    var afterEnd = 0;
    if (live) { live.hidden = false; }
    var interval = parseInt(root.getAttribute("data-poll-ms"), 10) || 2000;
    var timer = window.setInterval(function () {
      fetch(root.getAttribute("data-state-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (next) {
          draw(next, false);
          root.setAttribute("data-polls", String((parseInt(root.getAttribute("data-polls") || "0", 10)) + 1));
          if (settled(next)) {
            window.clearInterval(timer);
            if (live) { live.textContent = "finished"; }
          } else if (next.terminal) {
            afterEnd += 1;
            if (live) { live.textContent = "finished; waiting for the receipt's signature"; }
            if (afterEnd >= RECEIPT_POLLS) {
              window.clearInterval(timer);
              if (live) { live.textContent = "finished; the receipt is not signed yet: reload later"; }
            }
          }
        })
        .catch(function (error) { if (live) { live.textContent = "refresh failed (" + error.message + "), retrying"; } });
    }, interval);
  }

  window.MC = { drawGraph: drawGraph, drawTimeline: drawTimeline };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("mc-run");
    if (root) { runPage(root); }
    var version = document.getElementById("mc-version-graph");
    if (version) {
      var data = JSON.parse(document.getElementById("mc-version-state").textContent);
      drawGraph(version, data.graph, data.colours, {});
    }
  });
})();
