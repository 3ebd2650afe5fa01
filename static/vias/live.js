/* VIAS admin: live state, counts and progress over the websocket (docs/websocket.md, docs/admin.md).
 *
 * A page that shows a task ([data-live-task]) or the task list ([data-live-all]) connects to
 * /wsapi/v1/devconf_fx with the admin's session cookie, subscribes, and updates in place:
 *   "subtask.state"  -> the subtask's badge        [data-subtask-id=ID]
 *   "task.state"     -> the task's badge and counts [data-task-id=ID], [data-task-counts=ID]
 *   "subtask.schedule" (and the schedule fields of "task.state") -> a "SCHEDULING → next start"
 *                       note beside the badge while it waits for its mtask's window
 *   "progress"       -> the subtask's progress bar  [data-subtask-progress=ID] (and the task's average)
 *   "snapshot"       -> all of the above at once: the state when the page subscribed (sent first,
 *                       so a change made before the page loaded is never missed)
 *   "event"          -> a new row on top of the events table [data-live-events=TASK]
 * It reconnects with a growing delay when the socket closes (e.g. 1012 while Redis restarts).
 */
(function () {
  "use strict";

  var STATES = ["PENDING", "CONFIGURED", "STARTING", "RUNNING", "STOPPING", "STOPPED", "SUCCEEDED", "FAILED", "ABNORMAL", "RECOVERING"];

  // The states' words in the page's language (templates/admin/base_site.html).
  var LABELS = (function () {
    var node = document.getElementById("vias-state-labels");
    try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
  })();

  function stateLabel(state) { return LABELS[state] || state; }

  function badge(state) {
    var span = document.createElement("span");
    span.className = "vias-badge vias-state-" + String(state).toLowerCase();
    span.dataset.state = state;
    span.title = state;
    span.textContent = stateLabel(state);
    return span;
  }

  function setBadge(holder, state) {
    if (!holder || !state) return;
    var current = holder.querySelector(".vias-badge");
    if (current && current.dataset.state === state) return;
    holder.innerHTML = "";
    holder.appendChild(badge(state));
    showSchedule(holder);
    // The page's command buttons follow the state (static/vias/console.js).
    holder.dispatchEvent(new CustomEvent("vias:state", { bubbles: true, detail: { state: state } }));
  }

  // Waiting for its mtask's window: schedule_state "SCHEDULING" and next_start_dt (docs/websocket.md).
  function setSchedule(holder, data) {
    if (!holder || !("schedule_state" in data)) return;
    holder.dataset.scheduleState = data.schedule_state || "";
    holder.dataset.nextStart = data.next_start_dt || "";
    showSchedule(holder);
  }

  function showSchedule(holder) {
    var note = holder.querySelector(".vias-schedule");
    if (!holder.dataset.scheduleState) {
      if (note) note.remove();
      return;
    }
    if (!note) {
      note = document.createElement("small");
      note.className = "vias-schedule";
      holder.appendChild(note);
    }
    note.textContent = " " + stateLabel(holder.dataset.scheduleState) + " → " + (holder.dataset.nextStart || "—");
  }

  function setCounts(holder, counts) {
    var box = holder.querySelector(".vias-counts");
    if (!box) return;
    var all = box.dataset.allStates === "1";
    box.innerHTML = "";
    STATES.forEach(function (s) {
      var n = counts[s] || 0;
      if (!n && !all) return;
      var span = document.createElement("span");
      span.className = "vias-count vias-state-" + s.toLowerCase();
      span.dataset.countState = s;
      span.hidden = !n;
      span.textContent = stateLabel(s) + " " + n;
      box.appendChild(span);
    });
    if (!box.children.length) box.textContent = "—";
  }

  function setProgress(holder, value) {
    var bar = holder && holder.querySelector(".vias-progress");
    if (!bar) return;
    var v = Math.max(0, Math.min(100, Number(value) || 0));
    bar.dataset.progress = v.toFixed(1);
    bar.title = v.toFixed(1) + "%";
    bar.querySelector("span").style.width = v.toFixed(1) + "%";
    bar.querySelector("em").textContent = Math.round(v) + "%";
  }

  function each(selector, fn) {
    document.querySelectorAll(selector).forEach(fn);
  }

  function taskAverage(taskId) {
    var bars = document.querySelectorAll("[data-subtask-progress] .vias-progress");
    if (!bars.length) return;
    var sum = 0;
    bars.forEach(function (b) { sum += Number(b.dataset.progress) || 0; });
    each('[data-task-progress="' + taskId + '"]', function (h) { setProgress(h, sum / bars.length); });
  }

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text === undefined || text === null || text === "" ? "—" : String(text);
    return td;
  }

  function addEvent(table, data) {
    var body = table.tBodies[0];
    if (!body || data.event_id === undefined) return;
    if (body.querySelector('[data-event-id="' + data.event_id + '"]')) return;
    var row = document.createElement("tr");
    row.dataset.eventId = data.event_id;
    row.className = "vias-live-new";
    var when = cell(String(data.occurred_at || "").replace("T", " ").slice(0, 19));
    var link = document.createElement("a");
    link.href = (table.dataset.eventUrl || "").replace("/0/", "/" + data.event_id + "/");
    link.textContent = when.textContent;
    when.textContent = "";
    when.appendChild(link);
    row.appendChild(when);
    row.appendChild(cell(data.subtask_id));
    row.appendChild(cell(data.rule));
    row.appendChild(cell(data.category));
    row.appendChild(cell(data.zone));
    row.appendChild(cell(typeof data.score === "number" ? data.score.toFixed(2) : data.score));
    body.insertBefore(row, body.firstChild);
    var max = Number(table.dataset.maxRows) || 20;
    while (body.rows.length > max) body.deleteRow(body.rows.length - 1);
  }

  function applySnapshot(data) {
    (data.tasks || []).forEach(function (task) {
      apply({ push: "task.state", task_id: task.task_id, data: task });
      (task.subtasks || []).forEach(function (sub) {
        apply({ push: "subtask.state", task_id: task.task_id, data: sub });
        apply({ push: "progress", task_id: task.task_id, data: sub });
      });
      each('[data-task-progress="' + task.task_id + '"]', function (h) { setProgress(h, task.progress); });
    });
  }

  function apply(message) {
    var kind = message.push || message.kind;
    if (kind === "snapshot") {
      applySnapshot(message.data || {});
      document.dispatchEvent(new CustomEvent("vias:live", { detail: message }));
      return;
    }
    var data = message.data || message;
    var taskId = message.task_id || data.task_id;
    var subtaskId = data.subtask_id;
    if (kind === "subtask.state" && subtaskId !== undefined) {
      each('[data-subtask-id="' + subtaskId + '"]', function (h) { setBadge(h, data.state); setSchedule(h, data); });
      document.dispatchEvent(new CustomEvent("vias:live", { detail: message }));
    } else if (kind === "task.state" && taskId) {
      each('[data-task-id="' + taskId + '"]', function (h) { setBadge(h, data.state); setSchedule(h, data); });
      if (data.state_counts) each('[data-task-counts="' + taskId + '"]', function (h) { setCounts(h, data.state_counts); });
      document.dispatchEvent(new CustomEvent("vias:live", { detail: message }));
    } else if (kind === "subtask.schedule" && subtaskId !== undefined) {
      each('[data-subtask-id="' + subtaskId + '"]', function (h) { setSchedule(h, data); });
      document.dispatchEvent(new CustomEvent("vias:live", { detail: message }));
    } else if (kind === "progress" && subtaskId !== undefined) {
      each('[data-subtask-progress="' + subtaskId + '"]', function (h) { setProgress(h, data.progress); });
      if (taskId) taskAverage(taskId);
    } else if (kind === "event" && taskId) {
      each('[data-live-events="' + taskId + '"]', function (table) {
        var only = table.dataset.liveEventsSubtask;
        if (only && String(only) !== String(subtaskId)) return;
        addEvent(table, data);
      });
      document.dispatchEvent(new CustomEvent("vias:live", { detail: message }));
    }
  }

  function connect(root) {
    var status = document.querySelector("[data-live-status]");
    var task = root.dataset.liveTask;
    var project = root.dataset.project;
    var delay = 1000;
    function setStatus(on) {
      if (!status) return;
      status.classList.toggle("on", on);
      status.textContent = on ? status.dataset.on || "live" : status.dataset.off || "offline";
      document.body.dataset.live = on ? "on" : "off";
    }
    function open() {
      var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/wsapi/v1/devconf_fx";
      // The task's own project: a superuser operates every project, not only their first.
      if (project) url += "?project=" + encodeURIComponent(project);
      var socket;
      try {
        socket = new WebSocket(url);
      } catch (err) {
        return;
      }
      socket.onopen = function () {
        delay = 1000;
        socket.send(JSON.stringify({
          command: "post /wsapi/v1/devconf_fx/subscriptions",
          src_page: "admin",
          id: "admin-subscribe",
          params: task ? { task_id: task } : {},
        }));
      };
      socket.onmessage = function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (err) { return; }
        if (message.id === "admin-subscribe" || (message.command || "").indexOf("subscriptions") !== -1) {
          setStatus(message.ecode === 200);
          return;
        }
        apply(message);
      };
      socket.onclose = function () {
        setStatus(false);
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    open();
  }

  window.viasLive = { apply: apply };
  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector("[data-live-task], [data-live-all]");
    if (root && "WebSocket" in window) connect(root);
  });
})();
