/* The console's progressive part: live numbers by short polling, and the charts (uPlot).
   Every page works without it; text from the server is set with textContent, never as HTML. */
(function () {
  "use strict";
  var POLL_MS = 3000;

  function thousands(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  }

  var tz = document.body.dataset.tz;
  var clock = new Intl.DateTimeFormat("vi-VN", { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: tz || undefined });

  function hhmm(epoch) {  // a time of day in the configured zone, 24-hour, as the pages write it
    return clock.format(new Date(epoch * 1000));
  }

  function values(text) {
    return text ? text.split(",").map(Number) : [];
  }

  function sparkline(el) {
    if (typeof uPlot === "undefined") return;
    var ys = values(el.dataset.values);
    var xs = ys.map(function (_, i) { return i; });
    el.textContent = "";
    el.uplot = new uPlot({
      width: 120, height: 32, class: "spark-chart",
      cursor: { show: false }, legend: { show: false }, select: { show: false },
      scales: { x: { time: false }, y: { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: "#1a5fb4", width: 1.5, fill: "rgba(26,95,180,0.15)" }]
    }, [xs, ys], el);
  }

  function timeline(el) {
    if (typeof uPlot === "undefined") return;
    var ys = values(el.dataset.timeline);
    var start = Number(el.dataset.start);
    var xs = ys.map(function (_, i) { return start + 60 * i; });
    el.uplot = new uPlot({
      width: Math.min(720, el.clientWidth || 720), height: 200,
      legend: { show: false },
      axes: [{ values: function (u, splits) { return splits.map(hhmm); } }, {}],
      scales: { y: { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } } },
      series: [{}, { label: el.getAttribute("aria-label"), stroke: "#1a5fb4", width: 2,
        fill: "rgba(26,95,180,0.2)", paths: uPlot.paths.bars({ size: [0.9] }) }]
    }, [xs, ys], el);
  }

  function update(row, q) {
    row.querySelectorAll("[data-field]").forEach(function (el) {
      var name = el.dataset.field;
      if (name === "progress") {
        el.max = q.total || 1;
        el.value = q.finished;
      } else if (name === "progress_text") {
        el.textContent = thousands(q.finished) + "/" + thousands(q.total) + " (" + q.percent + "%)";
      } else if (name === "spark") {
        el.dataset.values = q.spark.join(",");
        if (el.uplot) el.uplot.setData([q.spark.map(function (_, i) { return i; }), q.spark]);
      } else if (name === "state_text") {
        el.textContent = q.state_text;
        el.className = "state state-" + q.state;
      } else if (name in q) {
        var v = q[name];
        el.textContent = typeof v === "number" ? thousands(v) : (v === null ? "" : v);
      }
    });
  }

  function poll(table) {
    var notice = document.querySelector(".live-error");
    fetch(table.dataset.live, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("logged out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        notice.hidden = true;
        var byCode = {};
        data.queues.forEach(function (q) { byCode[q.code] = q; });
        table.querySelectorAll("tr[data-queue]").forEach(function (row) {
          var q = byCode[row.dataset.queue];
          if (q) update(row, q);
        });
        table.dataset.polled = String(data.at);
      })
      .catch(function () {
        notice.textContent = document.body.dataset.liveError;
        notice.hidden = false;
      })
      .finally(function () { setTimeout(function () { poll(table); }, POLL_MS); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var insecure = document.getElementById("insecure");  // the login page: no Secure cookie over plain HTTP
    if (insecure && !window.isSecureContext) insecure.hidden = false;
    document.querySelectorAll("[data-field=spark]").forEach(sparkline);
    document.querySelectorAll("[data-timeline]").forEach(timeline);
    document.querySelectorAll("table[data-live]").forEach(function (table) {
      setTimeout(function () { poll(table); }, POLL_MS);
    });
  });
})();
