/* VIAS admin, "Add a camera": the chosen source feeds the drawing editor's frame and the
   "Test connection" button (one frame grabbed server-side, shown with its size or why not). */
(function () {
  "use strict";

  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_m, k) { return values[k] == null ? "" : values[k]; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var hidden = document.getElementById("id_frame_source");
    var video = document.getElementById("id_video");
    var stream = document.getElementById("id_stream_url");
    if (!hidden) return;

    function editor() {
      var root = document.querySelector(".field-roi .vias-draw");
      return root && root.viasDraw;
    }

    function useSource(value) {
      if (hidden.value === value) return;
      hidden.value = value;
      var draw = editor();
      if (draw) draw.loadFrame(false);
    }

    if (video) video.addEventListener("change", function () { useSource(video.value); });
    if (stream) stream.addEventListener("change", function () { if (stream.value.trim()) useSource(stream.value.trim()); });
    // A form shown again after an error keeps its source: draw on it straight away.
    var initial = (video && video.value) || (stream && stream.value.trim()) || "";
    if (initial) setTimeout(function () { useSource(initial); }, 0);

    var test = document.getElementById("vias-test-connection");
    var result = document.getElementById("vias-test-result");
    var img = document.getElementById("vias-test-frame");
    if (!test) return;
    test.addEventListener("click", function () {
      var url = stream.value.trim();
      if (!url) return;
      result.textContent = test.dataset.testing;
      img.hidden = true;
      fetch(test.dataset.frameUrl + "?fresh=1&source=" + encodeURIComponent(url), {
        credentials: "same-origin", headers: { Accept: "application/json" },
      })
        .then(function (r) { return r.json(); })
        .then(function (info) {
          if (info.ok) {
            result.textContent = format(test.dataset.ok, { w: info.width, h: info.height });
            img.src = info.src;
            img.hidden = false;
            useSource(url);
          } else {
            result.textContent = format(test.dataset.failed, { reason: info.reason });
          }
        })
        .catch(function (err) { result.textContent = format(test.dataset.failed, { reason: String(err) }); });
    });
  });
})();
