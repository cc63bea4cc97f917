/* dpc UI: the landscape (dagre layout per account lane), health, a pipeline's page.
 *
 * One file for `dpc ui` (live: data from the server, changes by server-sent events) and
 * for `dpc lineage --format html` (static: the graph embedded in the page). Every name,
 * tag or description is put in the document with textContent or setAttribute, never as
 * markup, so nothing a pipeline.yaml says can become HTML.
 */
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("dpc-data").textContent);
  var LIVE = !!boot.live;
  var COLOURS = boot.colours || {};
  var SVGNS = "http://www.w3.org/2000/svg";
  var NODE_W = 168, NODE_H = 34, J_W = 50, J_H = 18, LANE_HEAD = 24, LANE_GAP = 8;
  var RANK_SEP = 26, NODE_SEP = 16, LEFT = 12, COLS_PER_DEPTH = 3;

  var st = {date: boot.date, graph: boot.graph, model: null, layout: null, collapsed: {},
            focus: null, focusMode: "both", search: "", scale: 1, changes: 0};

  // -- small DOM helpers (text only) -------------------------------------------------
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { e.textContent = attrs[k]; }
      else if (k === "on") { Object.keys(attrs.on).forEach(function (ev) {
        e.addEventListener(ev, attrs.on[ev]); }); }
      else { e.setAttribute(k, attrs[k]); }
    });
    (kids || []).forEach(function (c) {
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { e.textContent = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
    });
    return e;
  }
  function colour(status) { return COLOURS[status] || COLOURS.NONE || ["#fff", "#78909c"]; }
  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}}).then(function (r) {
      return r.json();
    });
  }
  function q(params) {
    return Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
  }
  function fmtMs(ms) {
    if (!ms) { return "-"; }
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
  }

  // -- the model: pipelines, AND/OR junctions, links ---------------------------------
  function isRef(item) { return item && item.name && !item.allOf && !item.anyOf; }
  function buildModel(graph) {
    var nodes = {}, junctions = {}, links = [];
    graph.nodes.forEach(function (n) { nodes[n.key] = n; });
    graph.nodes.forEach(function (child) {
      var block = child.block;
      if (!block) { return; }
      var count = 0;
      function refKey(item) { return (item.account || child.account) + "/" + item.name; }
      function refLabel(item) {
        var s = item.status; return (typeof s === "string" ? [s] : (s || [])).join("|");
      }
      function listNode(kind, items) {
        var id = "j:" + child.key + ":" + (count++);
        junctions[id] = {id: id, kind: kind, account: child.account, child: child.key};
        items.forEach(function (item) {
          if (isRef(item)) {
            links.push({from: refKey(item), to: id, label: refLabel(item), dashed: kind === "any"});
          } else if (item && typeof item === "object") {
            links.push({from: walk(item), to: id, label: "", dashed: kind === "any"});
          }
        });
        return id;
      }
      function walk(b) {
        var ids = [];
        if (b.allOf && b.allOf.length) { ids.push(listNode("all", b.allOf)); }
        if (b.anyOf && b.anyOf.length) { ids.push(listNode("any", b.anyOf)); }
        if (ids.length === 1) { return ids[0]; }
        var op = "j:" + child.key + ":" + (count++);
        junctions[op] = {id: op, kind: String(b.operator || "AND").toUpperCase(),
                         account: child.account, child: child.key};
        ids.forEach(function (i) { links.push({from: i, to: op, label: ""}); });
        return op;
      }
      var lists = (block.allOf ? [block.allOf] : []).concat(block.anyOf ? [block.anyOf] : []);
      if (lists.length === 1 && lists[0].length === 1 && isRef(lists[0][0])) {
        // One parent: no junction, the edge says what the child waits for.
        var only = lists[0][0];
        links.push({from: refKey(only), to: child.key, label: refLabel(only),
                    dashed: !!block.anyOf});
      } else {
        links.push({from: walk(block), to: child.key, label: ""});
      }
    });
    links = links.filter(function (l) {
      return (nodes[l.from] || junctions[l.from]) && (nodes[l.to] || junctions[l.to]);
    });
    // Depth of each pipeline: the longest chain of parents above it (bounded: no cycle
    // can loop), so parents sit left of children across lanes.
    var depth = {};
    Object.keys(nodes).forEach(function (k) { depth[k] = 0; });
    var n = Object.keys(nodes).length;
    for (var pass = 0; pass < n; pass++) {
      var changed = false;
      graph.edges.forEach(function (e) {
        if (depth[e.parent] === undefined || depth[e.child] === undefined) { return; }
        if (depth[e.child] <= depth[e.parent] && depth[e.parent] + 1 < n) {
          depth[e.child] = depth[e.parent] + 1; changed = true;
        }
      });
      if (!changed) { break; }
    }
    var out = {}, inn = {};
    links.forEach(function (l) {
      (out[l.from] = out[l.from] || []).push(l); (inn[l.to] = inn[l.to] || []).push(l);
    });
    return {nodes: nodes, junctions: junctions, links: links, depth: depth, out: out, inn: inn,
            accounts: graph.accounts.slice()};
  }

  // -- layout: dagre per connected piece of an account lane, lanes stacked -------------
  // Columns are fixed: a pipeline of depth d sits in column cpd*d + cpd-1, the AND/OR
  // junctions feeding it in the columns just left of it, so every column is at the same
  // x in all lanes. Inside a lane, each connected piece (the lane's own edges) is ordered
  // and placed vertically by dagre (ranker "none": the columns are its ranks), then the
  // pieces are packed. A dagre run costs ~2 ms however small the graph, so a piece with
  // one node per column (most: a pipeline and the junctions into it) is put on one line,
  // as dagre would, without a run; at 700 pipelines ~110 runs remain of ~700 pieces.
  function accountOf(m, id) { return (m.nodes[id] || m.junctions[id]).account; }
  function columnsOf(m) {
    // Column of every node; a junction sits one column left of what it feeds.
    var next = {}, col = {}, chain = 1;
    m.links.forEach(function (l) { if (m.junctions[l.from]) { next[l.from] = l.to; } });
    function hops(id) {  // junctions between id and the pipeline it feeds (bounded)
      var k = 0;
      while (m.junctions[id] && k < 50) { id = next[id]; k++; }
      return k;
    }
    Object.keys(m.junctions).forEach(function (j) { chain = Math.max(chain, hops(j)); });
    var cpd = Math.max(COLS_PER_DEPTH, chain + 1);
    Object.keys(m.nodes).forEach(function (k) { col[k] = cpd * m.depth[k] + cpd - 1; });
    Object.keys(m.junctions).forEach(function (j) {
      var k = hops(j), p = j;
      while (m.junctions[p]) { p = next[p]; }
      col[j] = (p && col[p] !== undefined && m.nodes[p] ? col[p] : cpd - 1) - k;
    });
    return {col: col, cpd: cpd};
  }
  // Lane layouts by a hash of the lane (its nodes, columns and edges): a re-read graph
  // re-lays only the lanes that changed, and a reload takes them from localStorage.
  var laneCache = null, laneCacheUsed = {}, laneCacheDirty = false;
  var LAYOUT_KEY = "dpc-layout-v2";  // a new version when the lane layout changes
  function hashText(text) {  // two 32-bit FNV-style hashes: a short key, collisions unlikely
    var a = 0x811c9dc5, b = 0x9747b28c;
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193); b = Math.imul(b ^ c, 0x5bd1e995); b ^= b >>> 15;
    }
    return (a >>> 0).toString(36) + "." + (b >>> 0).toString(36);
  }
  function loadLaneCache() {
    if (laneCache) { return; }
    laneCache = {};
    try {
      var saved = JSON.parse(window.localStorage.getItem(LAYOUT_KEY) || "{}");
      if (saved && typeof saved === "object") { laneCache = saved; }
    } catch (e) { laneCache = {}; }  // no storage (a file page, privacy mode): lay out
  }
  function saveLaneCache() {
    // After the paint, and only the lanes of the graph shown (bounded size).
    if (!laneCacheDirty) { return; }
    laneCacheDirty = false;
    setTimeout(function () {
      try { window.localStorage.setItem(LAYOUT_KEY, JSON.stringify(laneCacheUsed)); }
      catch (e) { /* full or unavailable: the next load lays out again */ }
    }, 0);
  }
  function laneGroups(ids, edges) {
    // The connected pieces of a lane (its own edges only), by union-find.
    var up = {}, groups = {}, out = [];
    ids.forEach(function (id) { up[id] = id; });
    function root(x) { while (up[x] !== x) { up[x] = up[up[x]]; x = up[x]; } return x; }
    edges.forEach(function (e) { up[root(e[0])] = root(e[1]); });
    ids.forEach(function (id) {
      var r = root(id);
      if (!groups[r]) { groups[r] = []; out.push(groups[r]); }
      groups[r].push(id);
    });
    return out;
  }
  function layoutGroup(m, ids, edges, col) {
    // One connected piece laid out by dagre: y of each node from the piece's top.
    var pipeH = function (id) { return m.nodes[id] ? NODE_H : J_H; };
    var perCol = {}, path = true, tallest = 0;
    ids.forEach(function (id) {
      path = path && !perCol[col[id]]; perCol[col[id]] = true; tallest = Math.max(tallest, pipeH(id));
    });
    if (path) {
      // One node per column (a pipeline, or a chain of junctions into it): dagre would put
      // them on one line, centred; so does this, without a layout run.
      var line = {};
      ids.forEach(function (id) { line[id] = (tallest - pipeH(id)) / 2; });
      return {ys: line, height: tallest};
    }
    var g = new dagre.graphlib.Graph({multigraph: false});
    g.setGraph({rankdir: "LR", ranker: "none", ranksep: RANK_SEP, nodesep: NODE_SEP,
                marginx: 0, marginy: 0});
    g.setDefaultEdgeLabel(function () { return {}; });
    // Ranks: the piece's own columns, in order, empty ones left out (x does not come from
    // dagre, and fewer ranks mean fewer dummy nodes on long edges); 2 per column, as
    // dagre doubles every edge's length to make room for edge labels.
    var used = {}, rank = {};
    ids.forEach(function (id) { used[col[id]] = true; });
    Object.keys(used).map(Number).sort(function (a, b) { return a - b; })
      .forEach(function (c, i) { rank[c] = 2 * i; });
    ids.forEach(function (id) {
      g.setNode(id, {width: m.nodes[id] ? NODE_W : J_W, height: pipeH(id), rank: rank[col[id]]});
    });
    edges.forEach(function (e) { g.setEdge(e[0], e[1], {minlen: 1, weight: 4}); });
    dagre.layout(g);
    var minY = 1e9, maxY = -1e9, ys = {};
    ids.forEach(function (id) {
      var p = g.node(id);
      minY = Math.min(minY, p.y - p.height / 2); maxY = Math.max(maxY, p.y + p.height / 2);
    });
    ids.forEach(function (id) { ys[id] = g.node(id).y - g.node(id).height / 2 - minY; });
    return {ys: ys, height: maxY - minY};
  }
  function layoutLane(m, lane, col, laneAt) {
    // Each connected piece of the lane laid out by dagre, then the pieces packed top-down:
    // those whose other-lane neighbours are in lanes above first, each as high as the
    // pieces already placed in its columns allow.
    var acct = lane.account, edges = [], pull = {};
    lane.ids.forEach(function (id) {
      var sum = 0, n = 0;
      function other(x) { var a = accountOf(m, x); if (a !== acct) { sum += laneAt[a]; n++; } }
      (m.out[id] || []).forEach(function (l) {
        // Only forward edges inside the lane (a cycle cannot make dagre loop).
        if (accountOf(m, l.to) === acct) { if (col[l.to] > col[id]) { edges.push([id, l.to]); } }
        else { other(l.to); }
      });
      (m.inn[id] || []).forEach(function (l) { other(l.from); });
      pull[id] = [sum, n];
    });
    var sig = lane.ids.map(function (id) { return id + "@" + col[id] + "~" + pull[id]; }).join(",") +
              "|" + edges.map(function (e) { return e[0] + ">" + e[1]; }).join(",");
    var key = hashText(sig), hit = laneCache[key];
    if (hit && hit.ys && lane.ids.every(function (id) { return typeof hit.ys[id] === "number"; })) {
      laneCacheUsed[key] = hit;
      return hit;
    }
    var own = laneAt[acct], pieces = laneGroups(lane.ids, edges).map(function (ids, i) {
      var sum = 0, n = 0, lo = 1e9, hi = -1;
      ids.forEach(function (id) {
        sum += pull[id][0]; n += pull[id][1]; lo = Math.min(lo, col[id]); hi = Math.max(hi, col[id]);
      });
      var inner = edges.filter(function (e) { return ids.indexOf(e[0]) >= 0; });
      return {ids: ids, i: i, lo: lo, hi: hi, pull: n ? sum / n - own : 0,
              laid: layoutGroup(m, ids, inner, col)};
    });
    pieces.sort(function (a, b) { return (a.pull - b.pull) || (a.i - b.i); });
    var bottom = {}, ys = {}, height = 0;
    pieces.forEach(function (p) {
      var y = 0;
      for (var c = p.lo; c <= p.hi; c++) {
        if (bottom[c] !== undefined) { y = Math.max(y, bottom[c] + NODE_SEP); }
      }
      for (c = p.lo; c <= p.hi; c++) { bottom[c] = y + p.laid.height; }
      p.ids.forEach(function (id) { ys[id] = y + p.laid.ys[id]; });
      height = Math.max(height, y + p.laid.height);
    });
    var out = {ys: ys, height: height};
    laneCache[key] = laneCacheUsed[key] = out; laneCacheDirty = true;
    return out;
  }
  function layoutModel(m) {
    var lanes = {}, cols = columnsOf(m), col = cols.col, cpd = cols.cpd;
    loadLaneCache(); laneCacheUsed = {};
    m.accounts.forEach(function (a) { lanes[a] = {account: a, ids: [], minDepth: 1e9}; });
    Object.keys(m.nodes).forEach(function (k) {
      var lane = lanes[m.nodes[k].account]; lane.ids.push(k);
      lane.minDepth = Math.min(lane.minDepth, m.depth[k]);
    });
    Object.keys(m.junctions).forEach(function (k) { lanes[m.junctions[k].account].ids.push(k); });
    // x of each column: pipeline columns as wide as a pipeline, junction columns narrower;
    // the roots' column is the left edge of every lane.
    var top = 0, colX = [];
    Object.keys(col).forEach(function (id) { top = Math.max(top, col[id]); });
    for (var c = 0, x = LEFT; c <= top; c++) {
      colX[c] = x;
      if (c >= cpd - 1) { x += (c % cpd === cpd - 1 ? NODE_W : J_W) + RANK_SEP; }
    }
    var right = 0;
    var order = m.accounts.slice().sort(function (a, b) {
      return (lanes[a].minDepth - lanes[b].minDepth) || (a < b ? -1 : a > b ? 1 : 0);
    });
    var laneAt = {};
    order.forEach(function (acct, i) { laneAt[acct] = i; });
    order.forEach(function (acct) {
      var lane = lanes[acct], laid = layoutLane(m, lane, col, laneAt);
      lane.nodes = {};
      lane.ids.forEach(function (id) {
        var pipe = !!m.nodes[id], w = pipe ? NODE_W : J_W, c = Math.max(col[id], 0);
        var x = colX[c];  // a junction's column is as wide as a junction
        lane.nodes[id] = {x: x, y: laid.ys[id], w: w, h: pipe ? NODE_H : J_H};
        right = Math.max(right, x + w);
      });
      lane.height = laid.height;
    });
    var width = right + LEFT + 20;
    saveLaneCache();
    return {lanes: lanes, order: order, width: Math.max(width, 400)};
  }

  // -- landscape rendering -------------------------------------------------------------
  var svg = null, nodeEls = {}, linkEls = [], laneEls = {};
  function place() {
    // Positions from the lane layout and which lanes are collapsed.
    var L = st.layout, y = 6, pos = {};
    L.order.forEach(function (a) {
      var lane = L.lanes[a], shut = !!st.collapsed[a];
      lane.top = y;
      lane.h = LANE_HEAD + (shut ? 0 : lane.height + 10);
      Object.keys(lane.nodes).forEach(function (id) {
        var p = lane.nodes[id];
        pos[id] = shut ? {x: p.x, y: y + 4, w: p.w, h: LANE_HEAD - 8, hidden: true}
                       : {x: p.x, y: y + LANE_HEAD + p.y, w: p.w, h: p.h, hidden: false};
      });
      y += lane.h + LANE_GAP;
    });
    return {pos: pos, height: y};
  }

  function drawLandscape(view) {
    var m = st.model, L = st.layout, placed = place(), pos = placed.pos;
    nodeEls = {}; linkEls = []; laneEls = {};
    svg = sv("svg", {id: "graph", width: L.width, height: placed.height, role: "img",
                     viewBox: "0 0 " + L.width + " " + placed.height,
                     "aria-label": "pipeline dependency graph"});
    var defs = sv("defs");
    var marker = sv("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
                               markerWidth: "7", markerHeight: "7", orient: "auto"});
    marker.appendChild(sv("path", {d: "M0,0 L10,5 L0,10 z", fill: "#546e7a"}));
    defs.appendChild(marker); svg.appendChild(defs);
    var gl = sv("g"), ge = sv("g"), gn = sv("g");
    svg.appendChild(gl); svg.appendChild(ge); svg.appendChild(gn);
    L.order.forEach(function (a) {
      var lane = L.lanes[a];
      var g = sv("g", {"class": "account" + (st.collapsed[a] ? " collapsed" : ""),
                       "data-account": a});
      g.appendChild(sv("rect", {x: 2, y: lane.top, width: L.width - 4, height: lane.h, rx: 8,
                                "class": "lane"}));
      var head = sv("text", {x: 10, y: lane.top + 16, "class": "lane-title",
                             text: (st.collapsed[a] ? "▸ " : "▾ ") + "account " + a +
                                   " (" + Object.keys(lane.nodes).filter(function (k) {
                                     return m.nodes[k]; }).length + ")"});
      head.addEventListener("click", function (ev) {
        ev.stopPropagation(); st.collapsed[a] = !st.collapsed[a]; renderLandscape();
      });
      g.appendChild(head);
      laneEls[a] = g; gl.appendChild(g);
    });
    var labels = Object.keys(m.nodes).length <= 250;
    m.links.forEach(function (l, i) {
      var a = pos[l.from], b = pos[l.to];
      if (!a || !b) { return; }
      var x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
      var dx = Math.max(Math.abs(x2 - x1) / 2, 30);
      var g = sv("g", {"class": "edge", "data-from": l.from, "data-to": l.to});
      g.appendChild(sv("path", {d: "M" + x1 + "," + y1 + " C" + (x1 + dx) + "," + y1 + " " +
                                   (x2 - dx) + "," + y2 + " " + x2 + "," + y2,
                                "marker-end": "url(#arrow)",
                                "class": l.dashed ? "dashed" : ""}));
      if (l.label) {
        g.appendChild(sv("text", {x: x2 - 6, y: y2 - 4, "text-anchor": "end",
                                  "class": "edge-label" + (labels ? "" : " lazy"),
                                  text: l.label}));
      }
      ge.appendChild(g); linkEls.push({el: g, link: l});
    });
    Object.keys(m.junctions).forEach(function (id) {
      var j = m.junctions[id], p = pos[id];
      var g = sv("g", {"class": "junction" + (p.hidden ? " hidden" : ""), "data-id": id,
                       "data-kind": j.kind});
      g.appendChild(sv("rect", {x: p.x, y: p.y, width: p.w, height: p.h, rx: 9}));
      g.appendChild(sv("text", {x: p.x + p.w / 2, y: p.y + p.h / 2 + 4, "text-anchor": "middle",
                                text: j.kind === "all" ? "all of" : j.kind === "any" ? "any of"
                                                                              : j.kind}));
      gn.appendChild(g); nodeEls[id] = g;
    });
    Object.keys(m.nodes).forEach(function (k) {
      var n = m.nodes[k], p = pos[k];
      var g = sv("g", {"class": "node" + (p.hidden ? " hidden" : ""), tabindex: "0",
                       "data-key": k, "data-registered": String(n.registered)});
      g.appendChild(sv("rect", {x: p.x, y: p.y, width: p.w, height: p.h, rx: 7}));
      var name = sv("text", {x: p.x + 8, y: p.y + 14, "class": "node-name", text: n.name});
      g.appendChild(name);
      g.appendChild(sv("text", {x: p.x + 8, y: p.y + 28, "class": "node-sub", text: ""}));
      var tip = sv("title", {text: k + (n.info && n.info.description ?
                                          "\n" + n.info.description : "")});
      g.appendChild(tip);
      g.addEventListener("click", function (ev) { ev.stopPropagation(); focus(k); });
      g.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { focus(k); } });
      gn.appendChild(g); nodeEls[k] = g;
    });
    svg.addEventListener("click", function () { focus(null); });
    paint();
    highlight();
    var canvas = el("div", {id: "canvas"}, [svg]);
    view.appendChild(canvas);
    applyScale();
  }

  function statusOf(n) {
    if (!n.registered) { return "DANGLING"; }
    return n.status || "NONE";
  }
  function paint() {
    var m = st.model;
    Object.keys(m.nodes).forEach(function (k) {
      var g = nodeEls[k]; if (!g) { return; }
      var n = m.nodes[k], s = statusOf(n), c = colour(s);
      g.setAttribute("data-status", s);
      var rect = g.firstChild;
      if (s === "DANGLING") {
        rect.setAttribute("fill", "#fff"); rect.setAttribute("stroke", "#9e9e9e");
        rect.setAttribute("stroke-dasharray", "5 4");
      } else { rect.setAttribute("fill", c[0]); rect.setAttribute("stroke", c[1]); }
      var sub = s === "DANGLING" ? "not registered" :
        (n.status || (st.date ? "no run" : ((n.info || {}).schedule || "")));
      g.childNodes[2].textContent = sub;
    });
  }

  function reach(start, down) {
    var m = st.model, seen = {}, stack = [start];
    while (stack.length) {
      var k = stack.pop();
      if (seen[k]) { continue; }
      seen[k] = true;
      ((down ? m.out : m.inn)[k] || []).forEach(function (l) { stack.push(down ? l.to : l.from); });
    }
    return seen;
  }
  function matches(n) {
    var s = st.search.toLowerCase();
    if (!s) { return true; }
    var info = n.info || {};
    return [n.key, info.owner || "", info.description || ""].some(function (t) {
      return String(t).toLowerCase().indexOf(s) >= 0;
    });
  }
  function highlight() {
    var m = st.model;
    var keep = null;
    if (st.focus) {
      var up = st.focusMode !== "down" ? reach(st.focus, false) : {};
      var down = st.focusMode !== "up" ? reach(st.focus, true) : {};
      keep = {};
      Object.keys(up).forEach(function (k) { keep[k] = true; });
      Object.keys(down).forEach(function (k) { keep[k] = true; });
    }
    var hits = 0;
    Object.keys(nodeEls).forEach(function (id) {
      var n = m.nodes[id];
      var hit = n ? matches(n) : !st.search;
      if (n && st.search && hit) { hits++; }
      var on = (keep ? !!keep[id] : true) && (st.search && n ? hit : true) &&
               (st.search && !n ? false : true);
      nodeEls[id].classList.toggle("dim", !on);
      nodeEls[id].classList.toggle("sel", id === st.focus);
      nodeEls[id].classList.toggle("hit", !!(st.search && n && hit));
    });
    linkEls.forEach(function (le) {
      var on = keep ? !!(keep[le.link.from] && keep[le.link.to]) : !st.search;
      le.el.classList.toggle("dim", !on);
      le.el.classList.toggle("lit", !!(keep && on));
    });
    var info = document.getElementById("search-count");
    if (info) { info.textContent = st.search ? hits + " match(es)" : ""; }
  }

  function focus(key) {
    st.focus = key; st.focusMode = "both";
    highlight(); showPanel();
  }

  function showPanel() {
    var panel = document.getElementById("panel");
    if (!panel) { return; }
    panel.textContent = "";
    if (!st.focus) {
      panel.appendChild(el("p", {"class": "hint", text: "Click a pipeline: what it waits for, " +
        "what waits on it. Click an account's title to collapse it."}));
      return;
    }
    var n = st.model.nodes[st.focus];
    panel.appendChild(el("h2", {text: n.name}));
    panel.appendChild(el("div", {text: "account " + n.account}));
    panel.appendChild(el("div", {text: n.registered ? "status: " + (n.status || "no run")
                                                   : "not registered (dangling reference)"}));
    if (n.condition) { panel.appendChild(el("div", {"class": "cond", text: "waits for: " + n.condition})); }
    Object.keys(n.info || {}).forEach(function (k) {
      panel.appendChild(el("div", {text: k + ": " + n.info[k]}));
    });
    var row = el("div", {"class": "buttons"});
    [["both", "up + downstream"], ["up", "upstream"], ["down", "downstream"]].forEach(function (b) {
      row.appendChild(el("button", {"class": st.focusMode === b[0] ? "on" : "",
                                    "data-focus": b[0], text: b[1], on: {click: function () {
        st.focusMode = b[0]; highlight(); showPanel(); }}}));
    });
    panel.appendChild(row);
    if (LIVE && n.registered) {
      panel.appendChild(el("a", {href: "#p/" + encodeURIComponent(n.key), "class": "open",
                                 text: "open pipeline page →"}));
    }
  }

  function applyScale() {
    if (!svg) { return; }
    var w = Number(svg.getAttribute("viewBox").split(" ")[2]);
    var h = Number(svg.getAttribute("viewBox").split(" ")[3]);
    svg.setAttribute("width", String(Math.round(w * st.scale)));
    svg.setAttribute("height", String(Math.round(h * st.scale)));
    document.body.classList.toggle("zoomed-out", st.scale < 0.8);
  }

  function renderLandscape() {
    var view = document.getElementById("view");
    var canvas = document.getElementById("canvas");
    var scroll = canvas ? [canvas.scrollLeft, canvas.scrollTop] : null;
    view.textContent = "";
    var tools = el("div", {"class": "tools"});
    var search = el("input", {type: "search", id: "search", placeholder: "search pipelines, owners…",
                              value: st.search});
    search.addEventListener("input", function () { st.search = search.value; highlight(); });
    search.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter") { return; }
      var first = Object.keys(st.model.nodes).filter(function (k) {
        return st.search && matches(st.model.nodes[k]); })[0];
      if (first) { focus(first); scrollTo(first); }
    });
    tools.appendChild(search);
    tools.appendChild(el("span", {id: "search-count"}));
    tools.appendChild(el("button", {text: "−", title: "zoom out", on: {click: function () {
      st.scale = Math.max(0.2, st.scale / 1.25); applyScale(); }}}));
    tools.appendChild(el("button", {text: "+", title: "zoom in", on: {click: function () {
      st.scale = Math.min(3, st.scale * 1.25); applyScale(); }}}));
    tools.appendChild(el("button", {text: "collapse all", on: {click: function () {
      st.model.accounts.forEach(function (a) { st.collapsed[a] = true; }); renderLandscape(); }}}));
    tools.appendChild(el("button", {text: "expand all", on: {click: function () {
      st.collapsed = {}; renderLandscape(); }}}));
    view.appendChild(tools);
    view.appendChild(legend());
    var wrap = el("div", {id: "wrap"});
    view.appendChild(wrap);
    drawLandscape(wrap);
    wrap.appendChild(el("div", {id: "panel"}));
    showPanel();
    var c = document.getElementById("canvas");
    if (scroll) { c.scrollLeft = scroll[0]; c.scrollTop = scroll[1]; }
  }

  function scrollTo(key) {
    var g = nodeEls[key], c = document.getElementById("canvas");
    if (!g || !c) { return; }
    var r = g.firstChild;
    c.scrollLeft = Number(r.getAttribute("x")) * st.scale - 40;
    c.scrollTop = Number(r.getAttribute("y")) * st.scale - 80;
  }

  function legend() {
    var box = el("div", {"class": "legend"});
    Object.keys(COLOURS).forEach(function (s) {
      var i = el("i"); i.style.background = COLOURS[s][0]; i.style.borderColor = COLOURS[s][1];
      box.appendChild(el("span", {}, [i, s === "NONE" ? "no run" : s]));
    });
    box.appendChild(el("span", {text: "solid edge: allOf · dashed: anyOf · " +
                                      "pills: all of / any of / AND / OR"}));
    return box;
  }

  // -- health ------------------------------------------------------------------------
  function renderHealth(filter) {
    var view = document.getElementById("view");
    view.textContent = "loading…";
    getJSON("/api/health?" + q({date: st.date})).then(function (h) {
      view.textContent = "";
      if (filter) {
        var items = h.items.filter(function (it) {
          return it[filter.dim] === filter.value &&
                 (filter.cat === "late" ? it.late : it.category === filter.cat);
        });
        view.appendChild(el("h2", {text: filter.cat + " — " + filter.dim + " " + filter.value +
                                         " (" + items.length + ")"}));
        var ul = el("ul", {"class": "list"});
        items.forEach(function (it) {
          ul.appendChild(el("li", {}, [el("a", {href: "#p/" + encodeURIComponent(it.key),
                                                text: it.name}),
                                      " " + it.account + " · " + (it.status || "no run") +
                                      (it.why ? " · " + it.why : "")]));
        });
        view.appendChild(ul);
        view.appendChild(el("a", {href: "#health", text: "← health"}));
        return;
      }
      ["account", "owner"].forEach(function (dim) {
        view.appendChild(el("h2", {text: "By " + dim + " for " + h.date}));
        var table = el("table", {"class": "health", "data-dim": dim});
        var head = el("tr", {}, [el("th", {text: dim})]);
        h.categories.forEach(function (c) { head.appendChild(el("th", {text: c})); });
        table.appendChild(head);
        Object.keys(h.by[dim]).sort().forEach(function (v) {
          var tr = el("tr", {}, [el("td", {text: v})]);
          h.categories.forEach(function (c) {
            var n = h.by[dim][v][c];
            var td = el("td", {"class": n ? "c-" + c : "zero"});
            if (n) {
              td.appendChild(el("a", {href: "#list/" + dim + "/" + encodeURIComponent(v) + "/" + c,
                                      text: String(n)}));
            } else { td.textContent = "0"; }
            tr.appendChild(td);
          });
          table.appendChild(tr);
        });
        view.appendChild(table);
      });
      document.body.setAttribute("data-health", "1");
    });
  }

  // -- pipeline page -----------------------------------------------------------------
  var tails = [];
  function renderPipeline(key, keepRun) {
    var view = document.getElementById("view");
    getJSON("/api/pipeline?" + q({key: key, date: st.date})).then(function (p) {
      tails.forEach(function (t) { t.stop = true; }); tails = [];
      view.textContent = "";
      if (p.error) { view.appendChild(el("p", {text: p.error})); return; }
      view.appendChild(el("h2", {text: p.name + "  ·  account " + p.account}));
      var meta = el("div", {"class": "meta"});
      Object.keys(p.info).forEach(function (k) {
        meta.appendChild(el("div", {text: k + ": " + p.info[k]}));
      });
      view.appendChild(meta);
      view.appendChild(actions(p));
      view.appendChild(backfillProgress(p));  // see "backfill, graph changes"
      if (p.waits) {
        var w = el("div", {"class": "waits"});
        w.appendChild(el("h3", {text: "Condition for " + p.date + ": " + (p.waits.triggered ?
          "triggered" : p.waits.holds ? "holds" : "waiting")}));
        (p.waits.parts || []).forEach(function (r) {
          w.appendChild(el("div", {"class": r.holds ? "ok" : "wait",
            text: (r.holds ? "✓ " : "… ") + r.pipeline + "@" + r.account + " " +
                  (r.current || "no run") + (r.holds ? "" : " (waits for " +
                  r.statuses.join("|") + ")")}));
        });
        view.appendChild(w);
      }
      view.appendChild(el("h3", {text: "Runs"}));
      var table = el("table", {"class": "runs"});
      table.appendChild(el("tr", {}, ["date", "status", "run", "started", "why"].map(function (h) {
        return el("th", {text: h}); })));
      var chosen = p.runs.filter(function (r) { return r.arn === keepRun; })[0] ||
                   p.runs.filter(function (r) { return r.date.slice(0, 10) === p.date; })[0] ||
                   p.runs[0];
      p.runs.forEach(function (r) {
        var tr = el("tr", {"class": r === chosen ? "chosen" : "", "data-run": r.run_id}, [
          el("td", {text: r.date}), el("td", {"class": "s-" + r.status, text: r.status}),
          el("td", {}, [el("a", {href: "#", text: r.run_id, on: {click: function (ev) {
            ev.preventDefault(); renderPipeline(key, r.arn); }}})]),
          el("td", {text: fmtMs(r.start_ms || r.created_ms)}), el("td", {text: r.why})]);
        table.appendChild(tr);
      });
      view.appendChild(table);
      if (chosen) { view.appendChild(runDetail(chosen)); }
      view.appendChild(el("h3", {text: "Notifications"}));
      var nt = el("table", {"class": "notes"});
      nt.appendChild(el("tr", {}, ["time", "channel", "address", "via", "text"].map(function (h) {
        return el("th", {text: h}); })));
      p.notifications.forEach(function (n) {
        nt.appendChild(el("tr", {}, [n.time, n.channel, n.address, n.via,
                                     n.text + (n.reason ? " [" + n.reason + "]" : "")].map(
          function (t) { return el("td", {text: t}); })));
      });
      view.appendChild(p.notifications.length ? nt : el("p", {text: "none sent"}));
      st.pipelineRun = chosen ? chosen.arn : null;
      document.body.setAttribute("data-pipeline", key);
    });
  }

  function runDetail(r) {
    var box = el("div", {"class": "run"});
    box.appendChild(el("h3", {text: "Run " + r.run_id + " — " + r.status}));
    var why = el("div", {"class": "why", text: "why it ran: " + r.why});
    box.appendChild(why);
    (r.parents || []).forEach(function (pa) {
      box.appendChild(el("div", {"class": "parent"}, [
        "parent ", el("a", {href: "#p/" + encodeURIComponent(pa.account + "/" + pa.pipeline),
                            text: pa.pipeline + "@" + pa.account}),
        " " + pa.status + " (" + String(pa.executionArn || "").split(":").pop() + ")"]));
    });
    if (r.error) { box.appendChild(el("div", {"class": "error", text: "error: " + r.error})); }
    var t0 = r.start_ms || r.created_ms, t1 = t0;
    r.steps.forEach(function (s) { t1 = Math.max(t1, s.stop_ms || Date.now()); });
    var span = Math.max(t1 - t0, 1);
    var tl = el("div", {"class": "timeline"});
    r.steps.forEach(function (s) {
      var bar = el("div", {"class": "bar s-" + s.status});
      var a = s.start_ms ? (s.start_ms - t0) / span : 0;
      var b = s.start_ms ? ((s.stop_ms || Date.now()) - t0) / span : 0;
      bar.style.marginLeft = (a * 100).toFixed(1) + "%";
      bar.style.width = Math.max((b - a) * 100, 0.5).toFixed(1) + "%";
      tl.appendChild(el("div", {"class": "step"}, [
        el("span", {"class": "label", text: s.name + " (" + s.type + ") " + s.status +
          (s.start_ms && s.stop_ms ? " " + ((s.stop_ms - s.start_ms) / 1000).toFixed(1) + "s" : "")}),
        el("div", {"class": "track"}, [bar])]));
    });
    box.appendChild(tl);
    r.steps.forEach(function (s) {
      var pre = el("pre", {"class": "log", "data-step": s.name});
      box.appendChild(el("details", {open: ""}, [el("summary", {text: "log of " + s.name}), pre]));
      tail(r.arn, s.idx, pre);
    });
    return box;
  }

  function tail(arn, idx, pre) {
    var t = {stop: false, offset: 0};
    tails.push(t);
    function step() {
      if (t.stop) { return; }
      getJSON("/api/log?" + q({arn: arn, idx: idx, offset: t.offset})).then(function (c) {
        if (t.stop) { return; }
        if (c.text) { pre.appendChild(document.createTextNode(c.text)); }
        t.offset = c.offset;
        if (c.running || c.text) { setTimeout(step, 500); }
      });
    }
    step();
  }

  function actions(p) {
    var box = el("div", {"class": "actions"});
    var msg = el("span", {"class": "msg", id: "action-msg"});
    [["run", "Run"], ["rerun", "Rerun"], ["rerun-downstream", "Rerun downstream"]].forEach(
      function (a) {
        box.appendChild(el("button", {"data-action": a[0], text: a[1] + " for " + st.date,
                                      on: {click: function () { confirmAction(a, p, msg); }}}));
      });
    box.appendChild(backfillButton(p, msg));  // see "backfill, graph changes"
    box.appendChild(msg);
    return box;
  }

  function confirmAction(a, p, msg) {
    var dlg = el("div", {"class": "modal", id: "confirm"});
    var card = el("div", {"class": "card"});
    card.appendChild(el("p", {text: a[1] + " " + p.name + " (account " + p.account + ") for " +
                                    st.date + "?"}));
    card.appendChild(el("button", {id: "confirm-yes", text: "Yes, " + a[1].toLowerCase(),
      on: {click: function () {
        dlg.remove();
        fetch("/api/action", {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify({action: a[0], pipeline: p.key,
                                                    date: st.date})})
          .then(function (r) { return r.json(); })
          .then(function (res) {
            // The run it queued redraws the page live: keep the message across redraws.
            actionMsgs[p.key] = res.message || res.error;
            (document.getElementById("action-msg") || msg).textContent = actionMsgs[p.key];
          });
      }}}));
    card.appendChild(el("button", {id: "confirm-no", text: "Cancel",
                                   on: {click: function () { dlg.remove(); }}}));
    dlg.appendChild(card);
    document.body.appendChild(dlg);
  }

  // -- run grid: logical dates x pipelines, the latest run of each (/api/grid) -----------
  function gridParams() {  // #grid?account=...&owner=...&status=...&days=...
    var out = {}, h = location.hash.slice(1), i = h.indexOf("?");
    if (i < 0) { return out; }
    h.slice(i + 1).split("&").forEach(function (kv) {
      var p = kv.split("=");
      if (p[0] && p[1]) { out[decodeURIComponent(p[0])] = decodeURIComponent(p[1]); }
    });
    return out;
  }

  function gridHash(f) {
    var keys = Object.keys(f).filter(function (k) { return f[k]; });
    return "#grid" + (keys.length ? "?" + keys.map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(f[k]); }).join("&") : "");
  }

  function gridSelect(name, label, values, f) {
    var s = el("select", {name: name, "aria-label": label});
    s.appendChild(el("option", {value: "", text: "any " + label}));
    values.forEach(function (v) {
      var o = el("option", {value: v, text: v});
      if (f[name] === v) { o.selected = true; }
      s.appendChild(o);
    });
    s.addEventListener("change", function () {
      var g = {}; Object.keys(f).forEach(function (k) { g[k] = f[k]; });
      g[name] = s.value; location.hash = gridHash(g);
    });
    return s;
  }

  // A live change re-reads the grid at most once a second (700 x 30 cells per read).
  var gridTimer = null, gridAt = 0;
  function gridLater() {
    if (gridTimer) { return; }
    gridTimer = setTimeout(function () {
      gridTimer = null;
      if (location.hash.slice(1).indexOf("grid") === 0) { renderGrid(); }
    }, Math.max(0, 1000 - (Date.now() - gridAt)));
  }

  function renderGrid() {
    gridAt = Date.now();
    var view = document.getElementById("view"), f = gridParams();
    view.textContent = "loading…";
    var params = {days: f.days || "14"};
    if (st.date) { params.to = st.date; }
    ["account", "owner", "status"].forEach(function (k) { if (f[k]) { params[k] = f[k]; } });
    getJSON("/api/grid?" + q(params)).then(function (g) {
      view.textContent = "";
      if (g.error) { view.appendChild(el("p", {text: g.error})); return; }
      var owners = {};
      st.graph.nodes.forEach(function (n) { if (n.info && n.info.owner) { owners[n.info.owner] = 1; } });
      var tools = el("div", {"class": "grid-tools"}, [
        gridSelect("account", "account", st.graph.accounts.slice().sort(), f),
        gridSelect("owner", "owner", Object.keys(owners).sort(), f),
        gridSelect("status", "status", Object.keys(g.legend).filter(function (s) {
          return s !== "NONE" && s !== "PAUSED"; }), f),
        gridSelect("days", "days", ["7", "14", "30", "60", "90"], {
          account: f.account, owner: f.owner, status: f.status, days: f.days || "14"})]);
      view.appendChild(el("h2", {text: "Runs by logical date " + g.from + " … " + g.to +
                                       " (" + g.shown + " of " + g.pipelines + " pipelines)"}));
      view.appendChild(tools);
      var table = el("table", {"class": "grid"});
      var head = el("tr", {}, [el("th", {text: "pipeline"})]);
      g.dates.forEach(function (d) {
        head.appendChild(el("th", {"class": "gday", title: d, text: d.slice(8)}));
      });
      table.appendChild(head);
      var account = null;
      g.rows.forEach(function (r) {
        if (r.account !== account) {
          account = r.account;
          table.appendChild(el("tr", {"class": "gacct"}, [el("th", {colspan: String(g.dates.length + 1),
                                                                     text: "account " + account})]));
        }
        var tr = el("tr", {"data-key": r.key}, [el("td", {"class": "gname"}, [
          el("a", {href: "#p/" + encodeURIComponent(r.key),
                   text: (r.paused ? g.legend.PAUSED + " " : "") + r.pipeline}),
          r.owner ? el("span", {"class": "meta", text: " " + r.owner}) : ""])]);
        g.dates.forEach(function (d) {
          var c = r.cells[d], td = el("td", {"class": "gcell"});
          if (c) {
            td.appendChild(el("a", {"class": "s-" + c.status, "data-status": c.status,
                                    href: "#r/" + encodeURIComponent(r.key) + "/" + encodeURIComponent(c.arn),
                                    title: r.pipeline + " " + d + ": " + c.status + " (" + c.runId +
                                           (c.runs > 1 ? ", " + c.runs + " runs" : "") + ")",
                                    text: c.symbol}));
          } else { td.appendChild(el("span", {"class": "zero", text: g.legend.NONE})); }
          tr.appendChild(td);
        });
        table.appendChild(tr);
      });
      view.appendChild(g.rows.length ? table : el("p", {text: "no pipeline matches the filters"}));
      var lg = el("div", {"class": "legend"});
      Object.keys(g.legend).forEach(function (s) {
        lg.appendChild(el("span", {"class": "s-" + s, text: g.legend[s] + " " +
                                   (s === "NONE" ? "no run" : s === "PAUSED" ? "paused" : s)}));
      });
      view.appendChild(lg);
      document.body.setAttribute("data-grid", String(g.rows.length));
    });
  }

  // -- shell, routing, live ----------------------------------------------------------
  function header() {
    var h = el("header");
    h.appendChild(el("h1", {text: "dpc" + (LIVE ? "" : " lineage") +
                                   (st.date && !LIVE ? " for " + st.date : "")}));
    var g = st.graph;
    h.appendChild(el("span", {"class": "meta", id: "counts",
                              text: g.nodes.length + " pipeline(s) in " + g.accounts.length +
                                    " account(s)"}));
    if (LIVE) {
      var nav = el("nav");
      nav.appendChild(el("a", {href: "#", text: "Landscape"}));
      nav.appendChild(el("a", {href: "#health", text: "Health"}));
      nav.appendChild(el("a", {href: "#grid", text: "Grid"}));
      h.appendChild(nav);
      var d = el("input", {type: "date", id: "date", value: st.date || ""});
      d.addEventListener("change", function () {
        st.date = d.value; reloadGraph().then(route);
      });
      h.appendChild(d);
      h.appendChild(el("span", {id: "live", "class": "live", text: "● live"}));
    }
    return h;
  }

  function reloadGraph() {
    return getJSON("/api/graph?" + q({date: st.date})).then(function (d) {
      st.graph = d.graph; st.model = buildModel(d.graph); st.layout = layoutModel(st.model);
    });
  }

  function refreshStatuses() {
    return getJSON("/api/statuses?" + q({date: st.date})).then(function (s) {
      var m = st.model;
      Object.keys(m.nodes).forEach(function (k) {
        var was = m.nodes[k].status, now = s[k] ? s[k][0] : null;
        if (was !== now) {
          m.nodes[k].status = now; m.nodes[k].run = s[k] ? s[k][1] : null;
          window.dpcLastChange = Date.now();  // read by bench/ui_paint.py
        }
      });
      paint();
    });
  }

  function route() {
    var h = decodeURIComponent(location.hash.slice(1));
    tails.forEach(function (t) { t.stop = true; }); tails = [];
    if (h.indexOf("p/") === 0) { renderPipeline(h.slice(2)); return; }
    if (h === "health") { renderHealth(null); return; }
    if (h === "grid" || h.indexOf("grid?") === 0) { renderGrid(); return; }
    if (h.indexOf("r/") === 0) {  // a run's page: #r/KEY/ARN (each part encoded)
      var rp = location.hash.slice(3).split("/");
      renderPipeline(decodeURIComponent(rp[0]), decodeURIComponent(rp[1] || ""));
      return;
    }
    if (h.indexOf("list/") === 0) {
      var parts = location.hash.slice(1).split("/");
      renderHealth({dim: parts[1], value: decodeURIComponent(parts[2]), cat: parts[3]});
      return;
    }
    renderLandscape();
  }

  function onChange() {
    st.changes++;
    document.body.setAttribute("data-changes", String(st.changes));
    var h = location.hash.slice(1);
    if (h.indexOf("p/") === 0) { renderPipeline(decodeURIComponent(h.slice(2)), st.pipelineRun); }
    else if (h.indexOf("grid") === 0) { gridLater(); }
    else if (h === "health" || h.indexOf("list/") === 0) { route(); }
    else { refreshStatuses(); }
  }

  function start() {
    var t0 = performance.now();
    st.model = buildModel(st.graph);
    st.layout = layoutModel(st.model);
    // A large organisation opens as an overview; + and − zoom.
    if (st.graph.nodes.length > 200) { st.scale = 0.6; }
    var t1 = performance.now();
    var app = document.getElementById("app");
    app.appendChild(header());
    app.appendChild(el("main", {id: "view"}));
    route();
    window.addEventListener("hashchange", route);
    var t2 = performance.now();
    window.dpcTimings = {layoutMs: t1 - t0, renderMs: t2 - t1, readyAt: t2};
    // The frame after the drawing: style, layout and paint of the SVG done (bench/ui_paint.py).
    requestAnimationFrame(function () {
      setTimeout(function () { window.dpcTimings.paintedAt = performance.now(); }, 0);
    });
    document.body.setAttribute("data-ready", String(st.graph.nodes.length));
    if (LIVE && window.EventSource) {
      var es = new EventSource("/api/events");
      es.addEventListener("change", onChange);
      es.addEventListener("graph", onGraph);  // see "backfill, graph changes"
      es.addEventListener("hello", function () {
        document.getElementById("live").classList.add("on");
        document.body.setAttribute("data-live", "1");
      });
      es.onerror = function () { document.getElementById("live").classList.remove("on"); };
    }
  }
  // -- backfill, graph changes (issue #15) ---------------------------------------------
  // The backfill action of a pipeline's page (a date range, confirmed, then its progress
  // per date, redrawn live), and the "graph" event: pipelines added, removed or edited
  // while the page is open are drawn without a reload.
  var actionMsgs = {};  // what the last action said, kept across live redraws
  function backfillButton(p, msg) {
    if (actionMsgs[p.key]) { msg.textContent = actionMsgs[p.key]; }
    return el("button", {"data-action": "backfill", text: "Backfill…",
                         on: {click: function () { confirmBackfill(p, msg); }}});
  }

  function confirmBackfill(p, msg) {
    var dlg = el("div", {"class": "modal", id: "confirm"});
    var card = el("div", {"class": "card"});
    var from = el("input", {type: "date", id: "backfill-from", value: st.date || ""});
    var to = el("input", {type: "date", id: "backfill-to", value: st.date || ""});
    var down = el("input", {type: "checkbox", id: "backfill-downstream"});
    card.appendChild(el("p", {text: "Backfill " + p.name + " (account " + p.account +
                                    "): one run per logical date, children follow."}));
    card.appendChild(el("label", {}, ["from ", from]));
    card.appendChild(el("label", {}, [" to ", to]));
    card.appendChild(el("label", {}, [" ", down, " re-run children too (--downstream)"]));
    card.appendChild(el("p", {}));
    card.appendChild(el("button", {id: "confirm-yes", text: "Yes, backfill",
      on: {click: function () {
        dlg.remove();
        msg.textContent = "starting backfill…";
        fetch("/api/action", {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify({action: "backfill", pipeline: p.key,
                                                    from: from.value, to: to.value,
                                                    downstream: down.checked})})
          .then(function (r) { return r.json(); })
          .then(function (res) {
            actionMsgs[p.key] = res.message || res.error;
            var now = document.getElementById("action-msg") || msg;
            now.textContent = actionMsgs[p.key];
          });
      }}}));
    card.appendChild(el("button", {id: "confirm-no", text: "Cancel",
                                   on: {click: function () { dlg.remove(); }}}));
    dlg.appendChild(card);
    document.body.appendChild(dlg);
  }

  function backfillProgress(p) {
    var box = el("div", {"class": "backfills"});
    (p.backfills || []).forEach(function (b) {
      var done = (b.counts.SUCCEEDED || 0), all = b.dates.length;
      var head = el("h3", {text: "Backfill " + b.from + ".." + b.to +
                                 (b.downstream ? " (children too)" : "") + ": " + done + "/" +
                                 all + " succeeded"});
      var bar = el("progress", {max: String(all), value: String(done)});
      var table = el("table", {"class": "backfill", "data-backfill": b.id});
      b.dates.forEach(function (d) {
        table.appendChild(el("tr", {"data-date": d.date}, [
          el("td", {text: d.date}),
          // the date with its children: one whose child failed is FAILED (d.why says which)
          el("td", {"class": "s-" + (d.rollup || d.status),
                    text: d.status === "HELD" ? "waiting" : (d.rollup || d.status)}),
          el("td", {text: (d.run_id || "") + (d.attempt > 1 ? " (attempt " + d.attempt + ")" : "") +
                          (d.why ? " · " + d.why : "")})
        ]));
      });
      box.appendChild(el("div", {"class": "backfill-box"}, [head, bar, table]));
    });
    return box;
  }

  function onGraph() {
    st.graphChanges = (st.graphChanges || 0) + 1;
    reloadGraph().then(function () {
      var counts = document.getElementById("counts"), g = st.graph;
      if (counts) {
        counts.textContent = g.nodes.length + " pipeline(s) in " + g.accounts.length +
                             " account(s)";
      }
      var h = location.hash.slice(1);
      if (h.indexOf("p/") !== 0) { route(); }
      document.body.setAttribute("data-graph-changes", String(st.graphChanges));
    });
  }

  start();
})();
