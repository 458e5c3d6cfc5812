/* cmfrun UI: small progressive enhancements; every page works without this file.
   - lineage graph: drag to pan, wheel or buttons to zoom, shift-click a node to highlight
     the path from the root to it (reloads with ?to=), a drag never counts as a click;
   - filter forms: changing a select or a column checkbox submits the form. */
(function () {
  "use strict";

  function setupGraph(svg) {
    var full = { x: 0, y: 0, w: parseFloat(svg.dataset.width), h: parseFloat(svg.dataset.height) };
    var box = { x: full.x, y: full.y, w: full.w, h: full.h };
    function apply() { svg.setAttribute("viewBox", [box.x, box.y, box.w, box.h].join(" ")); }
    function zoom(factor, cx, cy) {
      var nw = box.w * factor, nh = box.h * factor;
      if (nw < 50 || nw > full.w * 20) { return; }
      box.x = cx - (cx - box.x) * factor;
      box.y = cy - (cy - box.y) * factor;
      box.w = nw; box.h = nh;
      apply();
    }
    function toUser(evt) {
      var r = svg.getBoundingClientRect();
      var scale = Math.max(box.w / r.width, box.h / r.height);
      var offX = (r.width * scale - box.w) / 2, offY = (r.height * scale - box.h) / 2;
      return { x: box.x - offX + (evt.clientX - r.left) * scale, y: box.y - offY + (evt.clientY - r.top) * scale, scale: scale };
    }
    svg.addEventListener("wheel", function (evt) {
      evt.preventDefault();
      var p = toUser(evt);
      zoom(evt.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y);
    }, { passive: false });
    var drag = null, moved = false;
    svg.addEventListener("pointerdown", function (evt) {
      if (evt.button !== 0) { return; }
      drag = { x: evt.clientX, y: evt.clientY, bx: box.x, by: box.y, scale: toUser(evt).scale };
      moved = false;
    });
    window.addEventListener("pointermove", function (evt) {
      if (!drag) { return; }
      var dx = evt.clientX - drag.x, dy = evt.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) { moved = true; svg.classList.add("dragging"); }
      if (moved) {
        box.x = drag.bx - dx * drag.scale;
        box.y = drag.by - dy * drag.scale;
        apply();
      }
    });
    window.addEventListener("pointerup", function () { drag = null; svg.classList.remove("dragging"); });
    svg.addEventListener("click", function (evt) {
      var node = evt.target.closest ? evt.target.closest("a.node") : null;
      if (moved) { evt.preventDefault(); moved = false; return; }
      if (node && evt.shiftKey) {
        evt.preventDefault();
        window.location.href = node.getAttribute("data-lineage");
      }
    });
    var buttons = document.querySelectorAll("[data-zoom]");
    Array.prototype.forEach.call(buttons, function (b) {
      b.addEventListener("click", function () {
        var how = b.getAttribute("data-zoom");
        if (how === "fit") { box = { x: full.x, y: full.y, w: full.w, h: full.h }; apply(); return; }
        zoom(how === "in" ? 1 / 1.3 : 1.3, box.x + box.w / 2, box.y + box.h / 2);
      });
    });
    // Big graphs start zoomed on the root node rather than as a speck.
    var root = svg.querySelector("a.node.root rect");
    if (root && full.w > 2400) {
      var rx = parseFloat(root.getAttribute("x")), ry = parseFloat(root.getAttribute("y"));
      box = { x: rx - 900, y: Math.max(0, ry - 300), w: 1800, h: Math.min(full.h, 1100) };
      apply();
    }
    svg.setAttribute("data-ready", "1");
    // After the next two frames the graph has been painted: note when (ms since navigation).
    window.requestAnimationFrame(function () {
      window.requestAnimationFrame(function () { svg.setAttribute("data-drawn-ms", String(Math.round(performance.now()))); });
    });
  }

  function setupFilters(form) {
    Array.prototype.forEach.call(form.querySelectorAll("select, input[type=checkbox]"), function (el) {
      el.addEventListener("change", function () {
        var page = form.querySelector("input[name=page]");
        if (page) { page.value = "1"; }
        form.submit();
      });
    });
  }

  var svg = document.getElementById("lineage");
  if (svg) { setupGraph(svg); }
  var filters = document.getElementById("filters");
  if (filters && !svg) { setupFilters(filters); }
})();
