// The Cloud jobs board: fetch ../api/jobs, render one row per job, refresh on its own.
// Plain script, no build step. Every value is inserted as text (never as HTML).
(function () {
  "use strict";

  var REFRESH_MS = 5000;
  var API = new URL("../api/jobs", document.currentScript.src);
  var timer = null;
  var filtersFilled = false;
  var shownDags = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = String(value);
      else if (name === "className") node.className = value;
      else node.setAttribute(name, String(value));
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) node.appendChild(child);
    });
    return node;
  }

  function label(name) { return String(name).replace(/_/g, " "); }

  function number(value) { return Number(value).toLocaleString("en-US"); }

  function time(iso) {
    if (!iso) return el("span", { text: "—" });
    var d = new Date(iso);
    var today = new Date().toDateString() === d.toDateString();
    var text = today ? d.toLocaleTimeString() : d.toLocaleString();
    return el("time", { datetime: iso, title: iso, text: text });
  }

  // The page runs in the Airflow UI's sandboxed iframe (no popups, no top navigation): links are
  // followed by an anchor in the embedding page (same origin), so a console link opens a new tab and
  // a task link opens the task instance in the Airflow UI itself.
  function follow(event) {
    var link = event.currentTarget;
    var host = null;
    try {
      if (window.top !== window && window.top.document) host = window.top.document;
    } catch (e) {
      host = null;
    }
    if (!host) return; // not embedded: the browser follows the link as usual
    event.preventDefault();
    var a = host.createElement("a");
    a.href = link.href;
    if (link.target === "_blank") {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    a.style.display = "none";
    host.body.appendChild(a);
    a.click();
    a.remove();
  }

  function link(href, text, className, newTab) {
    var a = el("a", {
      href: href, text: text, className: className,
      target: newTab ? "_blank" : "_top", rel: newTab ? "noopener noreferrer" : null,
    });
    a.addEventListener("click", follow);
    return a;
  }

  function stateCell(job) {
    var badge = el("span", {
      className: "state kind-" + job.state_kind, text: job.state || "—",
      title: job.state ? "normalized state" : "no status read yet",
    });
    var native = job.native_state
      ? el("span", { className: "sub native", text: "native " + job.native_state + (job.substate ? " / " + job.substate : "") })
      : null;
    return el("td", { className: "state-cell" }, [badge, native]);
  }

  function progressCell(job) {
    if (job.progress === null || job.progress === undefined) return el("td", { className: "progress-cell" });
    var pct = Math.round(job.progress * 100);
    var bar = el("progress", {
      max: "100", value: String(pct), "aria-valuenow": String(pct), "aria-label": "progress",
    });
    return el("td", { className: "progress-cell" }, [bar, el("span", { className: "progress-text", text: pct + "%" })]);
  }

  function detailsCell(job) {
    var parts = [];
    var shown = job.counters.filter(function (c) { return c.value; });
    if (shown.length) {
      parts.push(el("ul", { className: "counters", title: job.counters.map(function (c) {
        return label(c.name) + " " + number(c.value);
      }).join("\n") }, shown.map(function (c) {
        return el("li", { className: "counter", "data-counter": c.name, text: label(c.name) + " " + number(c.value) });
      })));
    }
    if (job.sub_jobs) {
      var s = job.sub_jobs;
      parts.push(el("span", {
        className: "sub-jobs sub",
        text: s.tasks_completed + "/" + s.tasks_total + " tasks in " + s.count + (s.count === 1 ? " subjob" : " subjobs")
          + (s.current && s.count > 1 && job.active ? " · now subjob " + s.current : ""),
      }));
    }
    if (job.message) parts.push(el("div", { className: job.state_kind === "success" ? "sub message-text" : "failure-message", text: job.message }));
    if (job.live_error) parts.push(el("div", { className: "live-error", text: "Live read failed: " + job.live_error }));
    return el("td", { className: "details-cell" }, parts);
  }

  function row(job) {
    var jobCell = el("td", { className: "job-cell" }, [
      job.console_url
        ? link(job.console_url, job.job_id || "(job)", "console-link job-id", true)
        : el("span", { className: "job-id", text: job.job_id || "—" }),
      job.job_type ? el("span", { className: "sub", text: label(job.job_type) }) : null,
      // No job: why (not started, upstream failed, failed before submitting, …).
      !job.job_id && job.no_job_reason ? el("span", { className: "sub no-job", text: job.no_job_reason }) : null,
    ]);
    var where = el("td", { className: "task-cell" }, [
      el("span", { className: "sub", text: job.dag_id }),
      el("span", { className: "sub", text: job.run_id }),
      link(job.task_url, job.task_id + (job.map_index >= 0 ? " [" + job.map_index + "]" : ""), "task-link", false),
      document.createTextNode(" "),
      el("span", { className: "task-state", text: job.task_state || "none", title: "task instance state" }),
    ]);
    return el("tr", {
      className: "job", "data-service": job.service, "data-state": job.state || "",
      "data-dag-id": job.dag_id, "data-run-id": job.run_id, "data-task-id": job.task_id,
      "data-source": job.source || "", "data-no-job": job.job_id ? "" : job.no_job_reason || "",
    }, [
      el("td", { className: "service-cell", text: job.service_title }),
      jobCell, stateCell(job), progressCell(job), detailsCell(job), where,
      el("td", { className: "time started" }, [time(job.started)]),
      el("td", { className: "time polled" }, [time(job.last_polled)]),
      el("td", { className: "time ended" }, [time(job.ended)]),
    ]);
  }

  function fill(select, options, current) {
    while (select.options.length > 1) select.remove(1);
    options.forEach(function (o) {
      select.appendChild(el("option", { value: o.value, text: o.text, selected: o.value === current ? "selected" : null }));
    });
    select.value = current || "";
  }

  function params() {
    var query = new URLSearchParams();
    ["service", "state", "dag_id"].forEach(function (name) {
      var value = $("filters").elements[name].value;
      if (value) query.set(name, value);
    });
    return query;
  }

  function render(data) {
    var query = new URLSearchParams(window.location.search);
    if (!filtersFilled) {
      fill($("filter-service"), data.services.map(function (s) { return { value: s.name, text: s.title }; }), query.get("service"));
      fill($("filter-state"), data.states.map(function (s) { return { value: s.name, text: s.name }; }), query.get("state"));
      filtersFilled = true;
    }
    var dag = $("filter-dag").value || query.get("dag_id") || "";
    var dags = data.dags.concat(dag && data.dags.indexOf(dag) < 0 ? [dag] : []);
    if (dags.join("\n") !== shownDags) { // refilled only when the list changes (an open list stays open)
      fill($("filter-dag"), dags.map(function (d) { return { value: d, text: d }; }), dag);
      shownDags = dags.join("\n");
    }
    $("window-hours").textContent = String(data.window_hours);
    // Rows whose data did not change keep their element (a link under the pointer stays put).
    var body = $("jobs").tBodies[0];
    var previous = {};
    Array.prototype.forEach.call(body.rows, function (tr) { previous[tr.getAttribute("data-key")] = tr; });
    body.replaceChildren.apply(body, data.jobs.map(function (job) {
      var key = JSON.stringify(job);
      var tr = previous[key] || row(job);
      tr.setAttribute("data-key", key);
      return tr;
    }));
    $("empty").hidden = data.jobs.length > 0;
    $("message").hidden = true;
    $("status").textContent = data.jobs.length + (data.jobs.length === 1 ? " job" : " jobs")
      + (data.truncated ? " (most recent only)" : "") + " · refreshed " + new Date().toLocaleTimeString()
      + (data.live ? "" : " · live reads off");
    document.body.setAttribute("data-loaded", "true");
  }

  function failed(text) {
    $("message").textContent = text;
    $("message").hidden = false;
    $("status").textContent = "";
    document.body.setAttribute("data-loaded", "error");
  }

  function load() {
    clearTimeout(timer);
    var query = filtersFilled ? params() : new URLSearchParams(window.location.search);
    var url = new URL(API);
    url.search = query.toString();
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) throw new Error("Sign in to Airflow to see the cloud jobs.");
        if (response.status === 403) throw new Error("You are not allowed to read task instances and XComs.");
        if (!response.ok) throw new Error("The board's API answered " + response.status + ".");
        return response.json();
      })
      .then(render, function (err) { failed(err.message); })
      .then(function () { timer = setTimeout(tick, REFRESH_MS); });
  }

  function tick() {
    if (document.hidden) timer = setTimeout(tick, REFRESH_MS);
    else load();
  }

  function onFilter() {
    var query = params();
    var search = query.toString();
    window.history.replaceState(null, "", search ? "?" + search : window.location.pathname);
    load();
  }

  document.addEventListener("DOMContentLoaded", function () {
    ["filter-service", "filter-state", "filter-dag"].forEach(function (id) {
      $(id).addEventListener("change", onFilter);
    });
    $("refresh").addEventListener("click", load);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) load(); });
    load();
  });
})();
