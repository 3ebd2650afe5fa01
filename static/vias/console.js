/* VIAS admin console: live view images (about 2 frames a second while the page is visible) and
   the per-camera figures (every 2 s). Asking for a frame is what tells the node someone watches. */
(function () {
  "use strict";
  var FRAME_MS = 500;
  var FIGURES_MS = 2000;

  function liveImage(img) {
    var src = img.dataset.liveFrame;
    var frames = 0;
    function next() { setTimeout(load, FRAME_MS); }
    function load() {
      if (document.hidden) { next(); return; }
      fetch(src + "?t=" + Date.now(), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.status === 200 ? r.blob() : null; })
        .then(function (blob) {
          if (blob) {
            var old = img.src;
            img.src = URL.createObjectURL(blob);
            if (old && old.indexOf("blob:") === 0) URL.revokeObjectURL(old);
            frames += 1;
            img.dataset.frames = String(frames);
            var note = img.parentNode.querySelector("[data-live-note]");
            if (note) note.textContent = note.dataset.on;
          }
        })
        .catch(function () {})
        .then(next);
    }
    load();
  }

  // Command buttons that apply in the current state only (no Stop on a stopped subtask).
  function followState(state) {
    document.querySelectorAll(".vias-buttons form[data-states]").forEach(function (form) {
      form.hidden = form.dataset.states.split(" ").indexOf(state) < 0;
    });
  }

  function figures(table) {
    var src = table.dataset.cameraFigures;
    var note = document.querySelector("[data-camera-note='" + table.dataset.subtask + "']");
    function load() {
      fetch(src, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          var body = table.tBodies[0];
          body.textContent = "";
          data.rows.forEach(function (row) {
            var tr = body.insertRow();
            tr.insertCell().textContent = row[0];
            tr.insertCell().textContent = row[1];
          });
          table.dataset.framesAnalysed = String(data.frames_analysed);
          followState(data.state);
          if (note) note.textContent = data.note || "";
        })
        .catch(function () {})
        .then(function () { setTimeout(load, FIGURES_MS); });
    }
    load();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("img[data-live-frame]").forEach(liveImage);
    document.querySelectorAll("table[data-camera-figures]").forEach(figures);
    document.addEventListener("vias:state", function (event) {
      if (event.target.closest("[data-role=subtask-state]") && document.getElementById("vias-subtask-panel")) {
        followState(event.detail.state);
      }
    });
  });
})();
