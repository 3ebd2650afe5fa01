/* VIAS admin: XML fields edited in CodeMirror 5 (vendored under static/vendor/), with the line and
 * column of a refused save marked beside that line. The textarea stays the form's value: every
 * change is saved back into it, and other scripts (draw-editor.js) listen for "vias:xmltext". */
(function () {
  "use strict";

  function markError(cm, textarea) {
    var line = parseInt(textarea.dataset.errorLine || "0", 10);
    if (!(line > 0)) return;
    var column = parseInt(textarea.dataset.errorColumn || "0", 10);
    var index = Math.min(line, cm.lineCount()) - 1;
    cm.addLineClass(index, "background", "vias-error-line");
    var field = textarea.closest(".vias-xml-field");
    var where = field && field.querySelector(".vias-xml-error-at");
    var row = textarea.closest(".form-row, tr, td, .fieldBox") || field;
    var list = row && row.querySelector(".errorlist");
    var note = document.createElement("div");
    note.className = "vias-error-widget";
    note.textContent = "▲ " + (where ? where.textContent : "") + (list ? " — " + list.textContent.trim() : "");
    cm.addLineWidget(index, note, { coverGutter: false, noHScroll: true });
    var mark = document.createElement("span");
    mark.className = "vias-error-gutter";
    mark.textContent = "●";
    cm.setGutterMarker(index, "vias-errors", mark);
    cm.setCursor({ line: index, ch: Math.max(column - 1, 0) });
    cm.scrollIntoView({ line: index, ch: 0 }, 60);
  }

  function init(textarea) {
    if (!window.CodeMirror || textarea.dataset.viasReady || textarea.name.indexOf("__prefix__") !== -1) return;
    textarea.dataset.viasReady = "1";
    var cm = window.CodeMirror.fromTextArea(textarea, {
      mode: "application/xml",
      lineNumbers: true,
      lineWrapping: true,
      autoCloseTags: true,
      matchBrackets: true,
      indentUnit: 2,
      viewportMargin: Infinity,
      gutters: ["CodeMirror-linenumbers", "vias-errors"],
    });
    textarea.viasEditor = cm;
    cm.getWrapperElement().setAttribute("data-for", textarea.id || textarea.name);
    cm.on("change", function (instance, change) {
      cm.save();
      if (change.origin !== "setValue") {
        textarea.dispatchEvent(new CustomEvent("vias:xmltext", { bubbles: true }));
      }
    });
    markError(cm, textarea);
  }

  function initAll(root) {
    (root || document).querySelectorAll("textarea.vias-xml").forEach(init);
  }

  function refreshAll() {
    document.querySelectorAll("textarea.vias-xml").forEach(function (t) {
      if (t.viasEditor) t.viasEditor.refresh();
    });
  }

  window.viasXml = { init: init, initAll: initAll, refreshAll: refreshAll };
  document.addEventListener("DOMContentLoaded", function () { initAll(document); });
  document.addEventListener("formset:added", function (event) { initAll(event.target); });
  // Collapsed fieldsets (<details>) and inline tabs hide editors; CodeMirror must measure again.
  document.addEventListener("toggle", refreshAll, true);
})();
