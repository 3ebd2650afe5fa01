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
            if (isFinite(v)) { shape.ground[axis] = v; changed(); }
          });
          cell.appendChild(el("span", {}, (L[axis ? "ground_y" : "ground_x"] || "") + " "));
          cell.appendChild(input);
          row.appendChild(cell);
        });
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
    this.shapes.forEach(function (shape, index) { self.drawShape(shape, scale, false, index); });
    if (this.draft) this.drawShape(this.draft, scale, true, this.shapes.length);
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
