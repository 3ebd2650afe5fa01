/* VIAS admin: the visual ROI and calibration editor (docs/admin.md). Plain JS on a <canvas>, no build.
 *
 * It draws over a recent frame of the video source (or a blank canvas of the channel's size when no
 * frame can be grabbed) and writes the XML of docs/xml-formats.md into the field's textarea; the
 * XML stays the source of truth: editing the text redraws the shapes. Coordinates are normalised
 * to 0..1 of the frame's width and height.
 *
 * ROI: polygons (name, include / exclude, 3..256 points) and lines (name, direction, 2 points).
 * Calibration: pairs of an image point and a ground point in metres.
 */
(function () {
  "use strict";

  var HIT = 9; // px (CSS) around a point that grabs it
  var COLORS = { include: "#2ecc40", exclude: "#ff4136", line: "#39a0ff", pair: "#ffdc00", draft: "#ffffff" };

  function fmt(v) {
    return String(Math.round(v * 10000) / 10000);
  }

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function clamp01(v) {
    return Math.max(0, Math.min(1, v));
  }

  function label(labels, key, params) {
    var text = labels[key] || key;
    Object.keys(params || {}).forEach(function (k) {
      text = text.split("%(" + k + ")s").join(params[k]);
    });
    return text;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- XML in and out ---------------------------------------------------------------------------

  function parseNumber(node, name) {
    var raw = node.getAttribute(name);
    var value = raw === null ? NaN : Number(raw);
    if (!isFinite(value)) throw new Error("<" + node.tagName + "> " + name + "=" + raw);
    return value;
  }

  function parseXml(text, kind) {
    var doc = new DOMParser().parseFromString(text, "application/xml");
    var error = doc.getElementsByTagName("parsererror")[0];
    if (error) throw new Error(error.textContent.split("\n")[0]);
    var root = doc.documentElement;
    if (root.tagName !== "root") throw new Error("<root>");
    var shapes = [];
    Array.prototype.forEach.call(root.children, function (node) {
      if (kind === "calibration") {
        if (node.tagName !== "pair") throw new Error("<" + node.tagName + ">");
        var image = node.getElementsByTagName("image")[0];
        var ground = node.getElementsByTagName("ground")[0];
        if (!image || !ground) throw new Error("<pair>");
        shapes.push({
          type: "pair",
          points: [[parseNumber(image, "x"), parseNumber(image, "y")]],
          ground: [parseNumber(ground, "x"), parseNumber(ground, "y")],
        });
        return;
      }
      if (node.tagName !== "polygon" && node.tagName !== "line") throw new Error("<" + node.tagName + ">");
      var points = Array.prototype.map.call(node.getElementsByTagName("point"), function (p) {
        return [parseNumber(p, "x"), parseNumber(p, "y")];
      });
      if (node.tagName === "polygon") {
        shapes.push({ type: "polygon", name: node.getAttribute("name") || "", mode: node.getAttribute("mode") || "include", points: points });
      } else {
        shapes.push({ type: "line", name: node.getAttribute("name") || "", direction: node.getAttribute("direction") || "both", points: points });
      }
    });
    return shapes;
  }

  function writeXml(shapes, kind) {
    var out = ['<?xml version="1.0" encoding="UTF-8"?>', "<root>"];
    shapes.forEach(function (s) {
      if (kind === "calibration") {
        out.push(
          '  <pair><image x="' + fmt(s.points[0][0]) + '" y="' + fmt(s.points[0][1]) + '"/><ground x="' +
            fmt(s.ground[0]) + '" y="' + fmt(s.ground[1]) + '"/></pair>'
        );
        return;
      }
      var extra = s.type === "polygon" ? ' mode="' + esc(s.mode) + '"' : ' direction="' + esc(s.direction) + '"';
      out.push("  <" + s.type + ' name="' + esc(s.name) + '"' + extra + ">");
      s.points.forEach(function (p) {
        out.push('    <point x="' + fmt(p[0]) + '" y="' + fmt(p[1]) + '"/>');
      });
      out.push("  </" + s.type + ">");
    });
    out.push("</root>");
    return out.join("\n");
  }

  // ---- the editor -------------------------------------------------------------------------------

  // ---- calibration: the image→ground homography of the pairs (least squares over all of them,
  // as the server's cv2.findHomography with method 0), each pair's reprojection error and a
  // ground grid drawn back onto the frame (docs/console.md).

  function solve(A, b) {
    var n = b.length;
    for (var c = 0; c < n; c++) {
      var pivot = c;
      for (var r = c + 1; r < n; r++) if (Math.abs(A[r][c]) > Math.abs(A[pivot][c])) pivot = r;
      if (Math.abs(A[pivot][c]) < 1e-12) return null;
      var t = A[c]; A[c] = A[pivot]; A[pivot] = t;
      var tb = b[c]; b[c] = b[pivot]; b[pivot] = tb;
      for (var r2 = c + 1; r2 < n; r2++) {
        var f = A[r2][c] / A[c][c];
        for (var k = c; k < n; k++) A[r2][k] -= f * A[c][k];
        b[r2] -= f * b[c];
      }
    }
    var x = new Array(n);
    for (var i = n - 1; i >= 0; i--) {
      var sum = b[i];
      for (var j = i + 1; j < n; j++) sum -= A[i][j] * x[j];
      x[i] = sum / A[i][i];
    }
    return x;
  }

  function fitHomography(pairs) {
    if (pairs.length < 4) return null;
    var AtA = [], Atb = [];
    for (var i = 0; i < 8; i++) { AtA.push([0, 0, 0, 0, 0, 0, 0, 0]); Atb.push(0); }
    pairs.forEach(function (p) {
      var x = p.points[0][0], y = p.points[0][1], X = Number(p.ground[0]), Y = Number(p.ground[1]);
      [[x, y, 1, 0, 0, 0, -x * X, -y * X, X], [0, 0, 0, x, y, 1, -x * Y, -y * Y, Y]].forEach(function (row) {
        for (var a = 0; a < 8; a++) {
          Atb[a] += row[a] * row[8];
          for (var b = 0; b < 8; b++) AtA[a][b] += row[a] * row[b];
        }
      });
    });
    var h = solve(AtA, Atb);
    return h && h.every(isFinite) ? h.concat([1]) : null;
  }

  function mapPoint(H, x, y) {
    var d = H[6] * x + H[7] * y + H[8];
    return [(H[0] * x + H[1] * y + H[2]) / d, (H[3] * x + H[4] * y + H[5]) / d, d];
  }

  function invert3(m) {
    var a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5], g = m[6], h = m[7], i = m[8];
    var A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
    var det = a * A + b * B + c * C;
    if (Math.abs(det) < 1e-15) return null;
    return [A / det, -(b * i - c * h) / det, (b * f - c * e) / det,
            B / det, (a * i - c * g) / det, -(a * f - c * d) / det,
            C / det, -(a * h - b * g) / det, (a * e - b * d) / det];
  }

  function niceStep(extent) {
    var raw = Math.max(extent, 1e-6) / 8;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10].map(function (k) { return k * power; });
    return steps.find(function (s) { return s >= raw; }) || steps[3];
  }

  function Editor(root) {
    this.root = root;
    this.textarea = root.querySelector("textarea.vias-xml");
    this.kind = this.textarea.dataset.kind;
    this.labels = JSON.parse(root.dataset.labels || "{}");
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.note = root.querySelector(".vias-draw-note");
    this.table = root.querySelector(".vias-draw-shapes tbody");
    this.shapes = [];
    this.draft = null; // the shape being placed
    this.drag = null; // {shape, index}
    this.image = null;
    this.buildToolbar();
    root.querySelector(".vias-draw-help").textContent = this.labels[this.kind === "calibration" ? "help_calibration" : "help_roi"] || "";
    this.readText();
    this.bindCanvas();
    this.loadFrame(false);
    var self = this;
    this.textarea.addEventListener("vias:xmltext", function () {
      self.readText();
    });
    root.viasDraw = this;
  }

  Editor.prototype.buildToolbar = function () {
    var self = this;
    var bar = this.root.querySelector(".vias-draw-toolbar");
    var L = this.labels;
    function button(key, action) {
      var b = el("button", { type: "button", "data-action": key }, L[key] || key);
      b.addEventListener("click", function (e) {
        e.preventDefault();
        action();
      });
      bar.appendChild(b);
      return b;
    }
    if (this.kind === "calibration") {
      this.addButtons = [button("pair", function () { self.startDraft("pair"); })];
    } else {
      this.addButtons = [
        button("polygon", function () { self.startDraft("polygon"); }),
        button("line", function () { self.startDraft("line"); }),
      ];
    }
    button("finish", function () { self.finishDraft(); });
    button("cancel", function () { self.cancelDraft(); });
    button("refresh", function () { self.loadFrame(true); });
    this.sizeNote = el("span", { class: "vias-draw-size" });
    bar.appendChild(this.sizeNote);
  };

  Editor.prototype.frameUrl = function (fresh) {
    var url = this.textarea.dataset.frameUrl;
    if (!url) return "";
    var params = [];
    (this.textarea.dataset.frameInputs || "").split(",").forEach(function (pair) {
      var parts = pair.split("=");
      var input = parts[1] && document.getElementById(parts[1]);
      if (input && input.value) params.push(encodeURIComponent(parts[0]) + "=" + encodeURIComponent(input.value));
    });
    if (fresh) params.push("fresh=1");
    return url + (params.length ? (url.indexOf("?") === -1 ? "?" : "&") + params.join("&") : "");
  };

  Editor.prototype.setSize = function (w, h) {
    this.canvas.width = w || 1280;
    this.canvas.height = h || 720;
    this.sizeNote.textContent = label(this.labels, "frame_size", { w: this.canvas.width, h: this.canvas.height });
  };

  Editor.prototype.loadFrame = function (fresh) {
    var self = this;
    var url = this.frameUrl(fresh);
    this.setSize(1280, 720);
    this.image = null;
    if (!url) {
      this.render();
      return;
    }
    this.note.textContent = this.labels.loading || "";
    this.root.dataset.frame = "loading";
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (info) {
        self.setSize(info.width, info.height);
        if (!info.ok) {
          self.note.textContent = label(self.labels, "no_frame", { reason: info.reason, w: info.width, h: info.height });
          self.root.dataset.frame = "blank";
          self.render();
          return;
        }
        var img = new Image();
        img.onload = function () {
          self.image = img;
          self.note.textContent = "";
          self.root.dataset.frame = "ok";
          self.render();
        };
        img.onerror = function () {
          self.note.textContent = label(self.labels, "no_frame", { reason: "image", w: info.width, h: info.height });
          self.root.dataset.frame = "blank";
          self.render();
        };
        img.src = info.src;
      })
      .catch(function (err) {
        self.note.textContent = label(self.labels, "no_frame", { reason: String(err), w: 1280, h: 720 });
        self.root.dataset.frame = "blank";
        self.render();
      });
  };

  Editor.prototype.readText = function () {
    try {
      this.shapes = parseXml(this.textarea.value, this.kind);
      if (this.note.dataset.invalid) {
        this.note.textContent = "";
        delete this.note.dataset.invalid;
      }
    } catch (err) {
      this.note.textContent = label(this.labels, "invalid", { error: err.message });
      this.note.dataset.invalid = "1";
    }
    this.draft = null;
    this.renderTable();
    this.render();
  };

  Editor.prototype.writeText = function () {
    var xml = writeXml(this.shapes, this.kind);
    if (this.textarea.viasEditor) {
      this.textarea.viasEditor.setValue(xml);
      this.textarea.viasEditor.save();
    } else {
      this.textarea.value = xml;
    }
    this.textarea.dispatchEvent(new Event("change", { bubbles: true }));
  };

  Editor.prototype.uniqueName = function (prefix) {
    var names = {};
    this.shapes.forEach(function (s) { names[s.name] = true; });
    for (var i = 1; ; i++) if (!names[prefix + i]) return prefix + i;
  };

  Editor.prototype.startDraft = function (type) {
    this.draft = { type: type, points: [] };
    if (type === "polygon") { this.draft.name = this.uniqueName("zone"); this.draft.mode = "include"; }
    if (type === "line") { this.draft.name = this.uniqueName("line"); this.draft.direction = "both"; }
    if (type === "pair") this.draft.ground = [0, 0];
    var self = this;
    this.root.querySelectorAll(".vias-draw-toolbar button").forEach(function (b) {
      b.classList.toggle("active", b.dataset.action === type);
    });
    this.root.dataset.mode = type;
    this.canvas.focus();
    self.render();
  };

  Editor.prototype.endDraftMode = function () {
    this.draft = null;
    delete this.root.dataset.mode;
    this.root.querySelectorAll(".vias-draw-toolbar button").forEach(function (b) { b.classList.remove("active"); });
  };

  Editor.prototype.finishDraft = function () {
    var d = this.draft;
    if (!d) return;
    var enough = d.type === "polygon" ? d.points.length >= 3 : d.type === "line" ? d.points.length === 2 : d.points.length === 1;
    if (enough) {
      this.shapes.push(d);
      this.endDraftMode();
      this.renderTable();
      this.writeText();
      if (d.type === "pair") {
        var inputs = this.table.querySelectorAll("tr:last-child input.vias-num");
        if (inputs[0]) inputs[0].focus();
      }
    }
    this.render();
  };

  Editor.prototype.cancelDraft = function () {
    this.endDraftMode();
    this.render();
  };

  Editor.prototype.toNorm = function (event) {
    var rect = this.canvas.getBoundingClientRect();
    return [clamp01((event.clientX - rect.left) / rect.width), clamp01((event.clientY - rect.top) / rect.height)];
  };

  Editor.prototype.hit = function (event) {
    var rect = this.canvas.getBoundingClientRect();
    var x = event.clientX - rect.left;
    var y = event.clientY - rect.top;
    for (var s = this.shapes.length - 1; s >= 0; s--) {
      var points = this.shapes[s].points;
      for (var i = 0; i < points.length; i++) {
        var dx = points[i][0] * rect.width - x;
        var dy = points[i][1] * rect.height - y;
        if (dx * dx + dy * dy <= HIT * HIT) return { shape: this.shapes[s], index: i };
      }
    }
    return null;
  };

  Editor.prototype.deletePoint = function (found) {
    var shape = found.shape;
    var minimum = shape.type === "polygon" ? 3 : shape.type === "line" ? 2 : 1;
    if (shape.points.length - 1 < minimum) {
      this.shapes.splice(this.shapes.indexOf(shape), 1);
    } else {
      shape.points.splice(found.index, 1);
    }
    this.renderTable();
    this.writeText();
    this.render();
  };

  Editor.prototype.bindCanvas = function () {
    var self = this;
    var canvas = this.canvas;
    canvas.addEventListener("mousedown", function (event) {
      if (event.button !== 0) return;
      event.preventDefault();
      if (self.draft) {
        self.draft.points.push(self.toNorm(event));
        if ((self.draft.type === "line" && self.draft.points.length === 2) || self.draft.type === "pair") {
          self.finishDraft();
        } else {
          self.render();
        }
        return;
      }
      var found = self.hit(event);
      if (!found) return;
      if (event.shiftKey) {
        self.deletePoint(found);
      } else {
        self.drag = found;
      }
    });
    canvas.addEventListener("mousemove", function (event) {
      if (self.drag) {
        self.drag.shape.points[self.drag.index] = self.toNorm(event);
        self.render();
      } else if (self.draft) {
        self.pointer = self.toNorm(event);
        self.render();
      } else {
        canvas.style.cursor = self.hit(event) ? "move" : "crosshair";
      }
    });
    function endDrag() {
      if (!self.drag) return;
      self.drag = null;
      self.renderTable();
      self.writeText();
    }
    canvas.addEventListener("mouseup", endDrag);
    canvas.addEventListener("mouseleave", endDrag);
    canvas.addEventListener("dblclick", function (event) {
      event.preventDefault();
      if (self.draft && self.draft.type === "polygon") {
        // The double click's second mousedown added a duplicate of the last point.
        var p = self.draft.points;
        if (p.length > 1 && p[p.length - 1][0] === p[p.length - 2][0] && p[p.length - 1][1] === p[p.length - 2][1]) p.pop();
        self.finishDraft();
      }
    });
    canvas.addEventListener("keydown", function (event) {
      if (!self.draft) return;
      if (event.key === "Enter") { event.preventDefault(); self.finishDraft(); }
      if (event.key === "Escape") { event.preventDefault(); self.cancelDraft(); }
    });
  };

  Editor.prototype.renderTable = function () {
    var self = this;
    var L = this.labels;
    this.table.innerHTML = "";
    var errors = this.kind === "calibration" ? this.fit().errors : null;
    var pairIndex = 0;
    this.shapes.forEach(function (shape, index) {
      var row = el("tr", { "data-shape": shape.type });
      row.appendChild(el("td", {}, shape.type === "pair" ? "#" + (index + 1) : L["shape_" + shape.type] || shape.type));
      function changed() {
        self.writeText();
        self.render();
      }
      if (shape.type === "pair") {
        row.appendChild(el("td", {}, "x " + fmt(shape.points[0][0]) + ", y " + fmt(shape.points[0][1])));
        [0, 1].forEach(function (axis) {
          var cell = el("td");
          var input = el("input", { type: "number", step: "any", class: "vias-num", "aria-label": L[axis ? "ground_y" : "ground_x"] });
          input.value = shape.ground[axis];
          input.placeholder = L[axis ? "ground_y" : "ground_x"];
          input.addEventListener("change", function () {
            var v = Number(input.value);
            if (isFinite(v)) { shape.ground[axis] = v; changed(); self.renderTable(); }
          });
          cell.appendChild(el("span", {}, (L[axis ? "ground_y" : "ground_x"] || "") + " "));
          cell.appendChild(input);
          row.appendChild(cell);
        });
        var error = errors ? errors[pairIndex] : null;
        pairIndex += 1;
        row.appendChild(el("td", { class: "vias-pair-error", "data-error": error == null ? "" : error.toFixed(3) },
          error == null ? (L.error_none || "") : label(L, "error", { e: error.toFixed(2) })));
      } else {
        var nameCell = el("td");
        var name = el("input", { type: "text", maxlength: "64", class: "vias-shape-name", "aria-label": L.name });
        name.value = shape.name;
        name.addEventListener("change", function () { shape.name = name.value.trim(); changed(); });
        nameCell.appendChild(name);
        row.appendChild(nameCell);
        var choiceCell = el("td");
        var select = el("select", { class: "vias-shape-choice", "aria-label": shape.type === "polygon" ? L.mode : L.direction });
        var options = shape.type === "polygon" ? ["include", "exclude"] : ["both", "left_to_right", "right_to_left"];
        options.forEach(function (value) {
          var option = el("option", { value: value }, L[value] || value);
          if ((shape.type === "polygon" ? shape.mode : shape.direction) === value) option.selected = true;
          select.appendChild(option);
        });
        select.addEventListener("change", function () {
          if (shape.type === "polygon") shape.mode = select.value;
          else shape.direction = select.value;
          changed();
        });
        choiceCell.appendChild(select);
        row.appendChild(choiceCell);
        row.appendChild(el("td", {}, shape.points.length + " " + (L.points || "")));
      }
      var deleteCell = el("td");
      var del = el("button", { type: "button", class: "vias-shape-delete" }, L["delete"] || "×");
      del.addEventListener("click", function (e) {
        e.preventDefault();
        self.shapes.splice(self.shapes.indexOf(shape), 1);
        self.renderTable();
        changed();
      });
      deleteCell.appendChild(del);
      row.appendChild(deleteCell);
      self.table.appendChild(row);
    });
  };

  Editor.prototype.render = function () {
    var ctx = this.ctx;
    var w = this.canvas.width;
    var h = this.canvas.height;
    var scale = w / Math.max(this.canvas.getBoundingClientRect().width || w, 1);
    ctx.clearRect(0, 0, w, h);
    if (this.image) {
      ctx.drawImage(this.image, 0, 0, w, h);
    } else {
      ctx.fillStyle = "#3a3a3a";
      ctx.fillRect(0, 0, w, h);
      ctx.strokeStyle = "rgba(255,255,255,0.08)";
      ctx.lineWidth = 1;
      for (var gx = 0; gx <= 10; gx++) {
        ctx.beginPath(); ctx.moveTo((w * gx) / 10, 0); ctx.lineTo((w * gx) / 10, h); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(0, (h * gx) / 10); ctx.lineTo(w, (h * gx) / 10); ctx.stroke();
      }
    }
    var self = this;
    if (this.kind === "calibration") this.drawGrid(scale);
    this.shapes.forEach(function (shape, index) { self.drawShape(shape, scale, false, index); });
    if (this.draft) this.drawShape(this.draft, scale, true, this.shapes.length);
  };

  // Each pair's error (metres) against the homography of all the pairs; null below 4 pairs.
  Editor.prototype.fit = function () {
    var pairs = this.shapes.filter(function (s) { return s.type === "pair" && s.points.length; });
    var H = fitHomography(pairs);
    if (!H) return { H: null, errors: null };
    var errors = pairs.map(function (p) {
      var m = mapPoint(H, p.points[0][0], p.points[0][1]);
      return Math.hypot(m[0] - Number(p.ground[0]), m[1] - Number(p.ground[1]));
    });
    return { H: H, errors: errors, pairs: pairs };
  };

  // Ground lines every `step` metres over the pairs' extent, mapped back onto the frame: a wrong
  // pair bends or tilts the grid where it does not follow the floor.
  Editor.prototype.drawGrid = function (scale) {
    var fit = this.fit();
    this.root.dataset.grid = fit.H ? "on" : "off";
    if (!fit.H) return;
    var inverse = invert3(fit.H);
    if (!inverse) return;
    var xs = fit.pairs.map(function (p) { return Number(p.ground[0]); });
    var ys = fit.pairs.map(function (p) { return Number(p.ground[1]); });
    var minX = Math.min.apply(null, xs), maxX = Math.max.apply(null, xs);
    var minY = Math.min.apply(null, ys), maxY = Math.max.apply(null, ys);
    var step = niceStep(Math.max(maxX - minX, maxY - minY));
    var ctx = this.ctx, w = this.canvas.width, h = this.canvas.height;
    ctx.save();
    ctx.strokeStyle = "rgba(255, 230, 0, 0.7)";
    ctx.lineWidth = 1 * scale;
    function line(x0, y0, x1, y1) {
      ctx.beginPath();
      var started = false;
      for (var t = 0; t <= 24; t++) {
        var gx = x0 + ((x1 - x0) * t) / 24, gy = y0 + ((y1 - y0) * t) / 24;
        var p = mapPoint(inverse, gx, gy);
        if (p[2] <= 0 || !isFinite(p[0]) || !isFinite(p[1])) { started = false; continue; }
        if (started) ctx.lineTo(p[0] * w, p[1] * h); else ctx.moveTo(p[0] * w, p[1] * h);
        started = true;
      }
      ctx.stroke();
    }
    var x0 = Math.floor(minX / step) * step, x1 = Math.ceil(maxX / step) * step;
    var y0 = Math.floor(minY / step) * step, y1 = Math.ceil(maxY / step) * step;
    for (var gx = x0; gx <= x1 + 1e-9; gx += step) line(gx, y0, gx, y1);
    for (var gy = y0; gy <= y1 + 1e-9; gy += step) line(x0, gy, x1, gy);
    ctx.fillStyle = "rgba(255, 230, 0, 0.9)";
    ctx.font = 12 * scale + "px sans-serif";
    ctx.fillText(label(this.labels, "grid", { step: step }), 8 * scale, h - 8 * scale);
    ctx.restore();
  };

  Editor.prototype.drawShape = function (shape, scale, draft, index) {
    var ctx = this.ctx;
    var w = this.canvas.width;
    var h = this.canvas.height;
    var pts = shape.points.map(function (p) { return [p[0] * w, p[1] * h]; });
    if (draft && this.pointer && shape.type !== "pair") pts = pts.concat([[this.pointer[0] * w, this.pointer[1] * h]]);
    var color = draft ? COLORS.draft : shape.type === "polygon" ? COLORS[shape.mode] || COLORS.include : shape.type === "line" ? COLORS.line : COLORS.pair;
    ctx.lineWidth = 2 * scale;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    if (pts.length > 1) {
      ctx.beginPath();
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (var i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
      if (shape.type === "polygon" && !draft) {
        ctx.closePath();
        ctx.globalAlpha = 0.22;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      ctx.stroke();
    }
    pts.slice(0, shape.points.length).forEach(function (p, i) {
      ctx.beginPath();
      ctx.arc(p[0], p[1], 5 * scale, 0, Math.PI * 2);
      ctx.fill();
      if (shape.type === "line") {
        ctx.font = 12 * scale + "px sans-serif";
        ctx.fillText(i === 0 ? "A" : "B", p[0] + 7 * scale, p[1] - 7 * scale);
      }
    });
    if (shape.type === "line" && shape.points.length === 2 && !draft) this.drawDirection(shape, pts, scale);
    if (pts.length) {
      ctx.font = "bold " + 13 * scale + "px sans-serif";
      ctx.fillStyle = color;
      var text = shape.type === "pair" ? "#" + (index + 1) + " (" + shape.ground[0] + ", " + shape.ground[1] + " m)" : shape.name;
      ctx.fillText(text, pts[0][0] + 8 * scale, pts[0][1] + 16 * scale);
    }
  };

  Editor.prototype.drawDirection = function (shape, pts, scale) {
    // Walking A→B with y pointing down, the right-hand side is (-dy, dx).
    var ctx = this.ctx;
    var dx = pts[1][0] - pts[0][0];
    var dy = pts[1][1] - pts[0][1];
    var len = Math.sqrt(dx * dx + dy * dy) || 1;
    var nx = -dy / len;
    var ny = dx / len;
    var mx = (pts[0][0] + pts[1][0]) / 2;
    var my = (pts[0][1] + pts[1][1]) / 2;
    var arrows = shape.direction === "left_to_right" ? [1] : shape.direction === "right_to_left" ? [-1] : [1, -1];
    arrows.forEach(function (sign) {
      var ex = mx + sign * nx * 28 * scale;
      var ey = my + sign * ny * 28 * scale;
      var sx = mx - sign * nx * 10 * scale;
      var sy = my - sign * ny * 10 * scale;
      ctx.beginPath();
      ctx.moveTo(sx, sy);
      ctx.lineTo(ex, ey);
      ctx.stroke();
      var ax = sign * nx;
      var ay = sign * ny;
      ctx.beginPath();
      ctx.moveTo(ex, ey);
      ctx.lineTo(ex - ax * 9 * scale + ay * 6 * scale, ey - ay * 9 * scale - ax * 6 * scale);
      ctx.lineTo(ex - ax * 9 * scale - ay * 6 * scale, ey - ay * 9 * scale + ax * 6 * scale);
      ctx.closePath();
      ctx.fill();
    });
  };

  function initAll(root) {
    (root || document).querySelectorAll(".vias-draw").forEach(function (node) {
      var textarea = node.querySelector("textarea.vias-xml");
      if (node.viasDraw || !textarea || textarea.name.indexOf("__prefix__") !== -1) return;
      new Editor(node);
    });
  }

  window.viasDraw = { initAll: initAll, parseXml: parseXml, writeXml: writeXml };
  document.addEventListener("DOMContentLoaded", function () { initAll(document); });
  document.addEventListener("formset:added", function (event) { initAll(event.target); });
  window.addEventListener("resize", function () {
    document.querySelectorAll(".vias-draw").forEach(function (node) { if (node.viasDraw) node.viasDraw.render(); });
  });
})();
