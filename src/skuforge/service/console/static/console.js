// skuforge console: live progress (SSE), launch options, review shortcuts and rollback, cron preview,
// "try one product" token streaming. Plain JavaScript, no build step, no third-party code.
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf") || "";

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    });
  }
  function money(x) { return x == null ? "-" : (x < 1 ? "$" + x.toFixed(4) : "$" + x.toFixed(2)); }
  function duration(s) {  // the same words as the server's `duration` filter
    if (s == null) return "-";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    return (s >= 36000 ? (s / 3600).toFixed(0) : (s / 3600).toFixed(1)) + " h";
  }
  function percent(x) { return x == null ? "-" : (x * 100).toFixed(1) + "%"; }
  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // -- filters that apply as soon as they change ------------------------------------------------------
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  // -- live progress on a job page ------------------------------------------------------------------
  var job = document.getElementById("job");
  var live = document.getElementById("live");
  var liveData = readJson("live-data") || {};
  function drawLive(view) {
    if (!live) return;
    var lv = view.live || {}, calls = lv.calls || {}, plan = view.plan || liveData.plan || {};
    var cost = view.progress ? view.progress.cost : liveData.cost;
    var put = function (name, text) {
      var node = live.querySelector('[data-live="' + name + '"]');
      if (node) node.textContent = text;
    };
    put("items_per_min", lv.items_per_min == null ? "-"
      : (lv.items_per_min >= 10 ? Math.round(lv.items_per_min).toLocaleString() : lv.items_per_min.toFixed(1)));
    put("spent", money(cost));
    put("projected", money(plan.projected_cost));
    put("rate_limited_share", percent(lv.rate_limited_share));
    put("rate_limited", calls.rate_limited || 0);
    put("retries", calls.retries || 0);
    put("timeouts", calls.timeouts || 0);
    if (lv.idle_s != null) put("idle", live.dataset.ago.replace("{d}", duration(lv.idle_s)));
    var stalled = live.querySelector('[data-live="stalled"]');
    if (stalled) stalled.hidden = !lv.stalled;
    live.toggleAttribute("data-stalled", !!lv.stalled);
    // the meter spans the projection (or the spend, once past it); the budget line shows when it is in view
    var scale = Math.max(1.25 * (plan.projected_cost || 0), 1.1 * (cost || 0)) || 1;
    var bar = live.querySelector('[data-live="spent_bar"]');
    if (bar) bar.style.width = Math.min(100, 100 * (cost || 0) / scale) + "%";
    var mark = live.querySelector('[data-live="budget_mark"]');
    if (mark && plan.budget) {
      mark.hidden = plan.budget > scale;
      mark.style.left = Math.min(100, 100 * plan.budget / scale) + "%";
    }
    var projected = live.querySelector('[data-live="projected_mark"]');
    if (projected && plan.projected_cost) projected.style.left = Math.min(100, 100 * plan.projected_cost / scale) + "%";
  }
  drawLive(liveData);
  if (job && window.EventSource) {
    var initial = job.getAttribute("data-state");
    var field = function (name) { return job.querySelector('[data-field="' + name + '"]'); };
    var source = new EventSource("/api/jobs/" + job.getAttribute("data-job") + "/events");
    source.addEventListener("progress", function (e) {
      var d = JSON.parse(e.data), p = d.progress;
      field("rows").textContent = p.rows;
      field("rows_total").textContent = p.rows_total == null ? "?" : p.rows_total;
      ["done", "flagged", "failed"].forEach(function (k) { field(k).textContent = p[k]; });
      field("tokens").textContent = (p.input_tokens + p.output_tokens).toLocaleString();
      field("cost").textContent = money(p.cost);
      var total = p.rows_total || 0;
      field("bar").style.width = (total ? Math.min(100, 100 * p.rows / total) : (d.state === "done" ? 100 : 0)) + "%";
      drawLive(d);
      if (d.state !== initial && ["done", "failed", "paused", "cancelled"].indexOf(d.state) >= 0) {
        source.close();
        window.location.reload();
      }
    });
    source.addEventListener("end", function () { source.close(); });
  }

  // -- launch options: redraw the projection for the chosen mode and executor ------------------------
  var launchForm = document.getElementById("launch-form");
  var choices = readJson("launch-choices");
  if (launchForm && choices) {
    var words = document.getElementById("launch-words").dataset;
    var shown = function (name) { return launchForm.querySelector('[data-choice="' + name + '"]'); };
    var redraw = function () {
      var mode = launchForm.querySelector("input[name=mode]:checked").value;
      var ray = launchForm.querySelector("input[name=executor][value=ray]");
      if (ray && mode === "batch") {  // a batch runs in the worker, never on Ray
        ray.disabled = true;
        launchForm.querySelector("input[name=executor][value=local]").checked = true;
      } else if (ray) {
        ray.disabled = !choices.some(function (c) { return c.executor === "ray" && c.available; });
      }
      var executor = launchForm.querySelector("input[name=executor]:checked").value;
      var c = choices.filter(function (x) { return x.mode === mode && x.executor === executor; })[0] || choices[0];
      shown("cost").textContent = money(c.cost_expected);
      shown("range").textContent = c.cost_high ? "(" + money(c.cost_low) + "–" + money(c.cost_high) + ")" : "";
      shown("time").textContent = c.within_s ? words.within.replace("{d}", duration(c.within_s))
        : (c.wall_s ? words.about.replace("{d}", duration(c.wall_s)) : "-");
      launchForm.setAttribute("data-mode", mode);
    };
    launchForm.addEventListener("change", redraw);
    redraw();
  }

  // -- review queue: a/r/e to decide, u to roll back an edit, j/k to move -----------------------------
  var review = document.getElementById("review");
  if (review) {
    var reviewWords = document.getElementById("review-words");
    var cards = Array.prototype.slice.call(review.querySelectorAll(".review-item"));
    var at = 0;
    var focus = function (i) {
      if (!cards.length) return;
      at = Math.max(0, Math.min(cards.length - 1, i));
      cards.forEach(function (c, n) { c.classList.toggle("current", n === at); });
      cards[at].focus({ preventScroll: true });
      cards[at].scrollIntoView({ block: "nearest" });
    };
    var fail = function (r) {
      return r.json().then(function (e) { alert(e.error.message + "\n" + (e.error.hint || "")); });
    };
    var mark = function (card, state, text) {
      var node = card.querySelector('[data-field="decision"]');
      node.textContent = "✓ " + text;
      node.className = "decision " + state;
      card.dataset.review = state;
    };
    var decide = function (card, action, output) {
      var body = { row_id: card.dataset.row, step: card.dataset.step, variant: card.dataset.variant,
                   action: action, expected_key: card.dataset.key || null };
      if (output !== undefined) body.output = output;
      return post("/api/jobs/" + review.dataset.job + "/review", body).then(function (r) {
        if (!r.ok) return fail(r);
        var state = { approve: "approved", reject: "rejected", edit: "edited" }[action];
        mark(card, state, reviewWords.dataset[state]);
        card.classList.add("decided");
        focus(cards.indexOf(card) + 1);
      });
    };
    var rollback = function (card) {
      var body = { row_id: card.dataset.row, step: card.dataset.step, variant: card.dataset.variant };
      return post("/api/jobs/" + review.dataset.job + "/review/rollback", body).then(function (r) {
        if (!r.ok) return fail(r);
        return r.json().then(function (d) {
          mark(card, "rolled", reviewWords.dataset.rolled);
          card.dataset.review = d.review || "";
          var button = card.querySelector('button[data-act="rollback"]');
          if (button) button.remove();
          card.classList.add("rolled-back");
        });
      });
    };
    var edit = function (card) {
      var form = card.querySelector(".editor");
      form.hidden = false;
      var area = form.querySelector("textarea");
      area.focus();
      form.onsubmit = function (e) {
        e.preventDefault();
        var value;
        try { value = JSON.parse(area.value); } catch (err) { value = area.value; }
        form.hidden = true;
        decide(card, "edit", value);
      };
    };
    review.addEventListener("click", function (e) {
      var button = e.target.closest("button[data-act]");
      if (!button) return;
      var card = button.closest(".review-item");
      focus(cards.indexOf(card));
      var act = button.dataset.act;
      if (act === "edit") edit(card); else if (act === "rollback") rollback(card); else decide(card, act);
    });
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
      var card = cards[at];
      if (e.key === "j") focus(at + 1);
      else if (e.key === "k") focus(at - 1);
      else if (card && e.key === "a") decide(card, "approve");
      else if (card && e.key === "r") decide(card, "reject");
      else if (card && e.key === "u" && card.querySelector('button[data-act="rollback"]')) rollback(card);
      else if (card && e.key === "e") { e.preventDefault(); edit(card); }
    });
    focus(0);
  }

  // -- schedules: preview the cron expression in plain words as it is typed --------------------------
  var cronInput = document.getElementById("cron-input");
  var cronPreview = document.getElementById("cron-preview");
  if (cronInput && cronPreview) {
    var timer = null, asked = 0;
    var describe = cronPreview.querySelector('[data-field="description"]');
    var next = cronPreview.querySelector('[data-field="next"]');
    var ask = function () {
      var mine = ++asked;
      var url = "/api/schedules/preview?lang=" + encodeURIComponent(cronPreview.dataset.lang) +
                "&cron=" + encodeURIComponent(cronInput.value);
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
        if (mine !== asked) return;  // an older answer arriving late
        describe.classList.toggle("bad", !d.valid);
        describe.textContent = d.valid ? d.description : (d.error ? d.error.message : "?");
        next.innerHTML = "";
        (d.next_runs_text || []).forEach(function (text) {
          var li = document.createElement("li");
          li.textContent = text;
          next.appendChild(li);
        });
        cronPreview.setAttribute("data-cron", d.cron || "");
      });
    };
    cronInput.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 250);
    });
  }

  // -- try one product: stream the model's tokens ---------------------------------------------------
  var tryForm = document.getElementById("try");
  if (tryForm) {
    var out = { prompt: document.getElementById("try-prompt"), answer: document.getElementById("try-answer"),
                parsed: document.getElementById("try-parsed") };
    var handle = function (event, data) {
      if (event === "prompt") out.prompt.textContent = data.messages.map(function (m) { return "[" + m.role + "]\n" + m.content; }).join("\n\n");
      else if (event === "token") out.answer.textContent += data;
      else if (event === "done") out.parsed.textContent = JSON.stringify(data.output !== undefined ? data.output : data, null, 2);
      else if (event === "error") out.parsed.textContent = data.error.message + "\n" + (data.error.hint || "");
    };
    tryForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var f = new FormData(tryForm);
      out.prompt.textContent = out.answer.textContent = out.parsed.textContent = "";
      var body = { recipe: f.get("recipe"), model: f.get("model") || null, catalog: f.get("catalog") || null,
                   row_index: Math.max(0, parseInt(f.get("row") || "1", 10) - 1) };
      post("/api/try", body).then(function (r) {
        if (!r.ok) return r.json().then(function (e) { handle("error", e); });
        var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
        var pump = function () {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            buffer += decoder.decode(chunk.value, { stream: true });
            var parts = buffer.split("\n\n");
            buffer = parts.pop();
            parts.forEach(function (part) {
              var event = "message", data = "";
              part.split("\n").forEach(function (line) {
                if (line.indexOf("event: ") === 0) event = line.slice(7);
                else if (line.indexOf("data: ") === 0) data += line.slice(6);
              });
              if (data) handle(event, JSON.parse(data));
            });
            return pump();
          });
        };
        return pump();
      });
    });
  }
})();
