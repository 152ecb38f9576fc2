// skuforge console: live progress (SSE), review keyboard shortcuts, "try one product" token streaming.
// Plain JavaScript, no build step, no third-party code.
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

  // -- live progress on a job page ------------------------------------------------------------------
  var job = document.getElementById("job");
  if (job && window.EventSource) {
    var initial = job.getAttribute("data-state");
    var field = function (name) { return job.querySelector('[data-field="' + name + '"]'); };
    var money = function (x) { return x < 1 ? "$" + x.toFixed(4) : "$" + x.toFixed(2); };
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
      if (d.state !== initial && ["done", "failed", "paused", "cancelled"].indexOf(d.state) >= 0) {
        source.close();
        window.location.reload();
      }
    });
    source.addEventListener("end", function () { source.close(); });
  }

  // -- review queue: a/r/e to decide, j/k to move ----------------------------------------------------
  var review = document.getElementById("review");
  if (review) {
    var words = document.getElementById("review-words");
    var cards = Array.prototype.slice.call(review.querySelectorAll(".review-item"));
    var at = 0;
    var focus = function (i) {
      if (!cards.length) return;
      at = Math.max(0, Math.min(cards.length - 1, i));
      cards.forEach(function (c, n) { c.classList.toggle("current", n === at); });
      cards[at].focus({ preventScroll: true });
      cards[at].scrollIntoView({ block: "nearest" });
    };
    var decide = function (card, action, output) {
      var body = { row_id: card.dataset.row, step: card.dataset.step, variant: card.dataset.variant,
                   action: action, expected_key: card.dataset.key || null };
      if (output !== undefined) body.output = output;
      return post("/api/jobs/" + review.dataset.job + "/review", body).then(function (r) {
        if (!r.ok) return r.json().then(function (e) { alert(e.error.message + "\n" + (e.error.hint || "")); });
        var state = { approve: "approved", reject: "rejected", edit: "edited" }[action];
        var mark = card.querySelector('[data-field="decision"]');
        mark.textContent = "✓ " + words.dataset[state];
        mark.className = "decision " + state;
        card.classList.add("decided");
        focus(cards.indexOf(card) + 1);
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
      if (button.dataset.act === "edit") edit(card); else decide(card, button.dataset.act);
    });
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
      var card = cards[at];
      if (e.key === "j") focus(at + 1);
      else if (e.key === "k") focus(at - 1);
      else if (card && e.key === "a") decide(card, "approve");
      else if (card && e.key === "r") decide(card, "reject");
      else if (card && e.key === "e") { e.preventDefault(); edit(card); }
    });
    focus(0);
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
