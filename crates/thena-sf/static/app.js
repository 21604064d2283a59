// The only script of the admin page: Copy buttons.
document.addEventListener("click", function (e) {
  var b = e.target.closest("button.copy");
  if (!b) return;
  var el = document.getElementById(b.dataset.copy);
  if (!el) return;
  var text = el.textContent;
  var done = function () {
    b.textContent = "Copied";
    setTimeout(function () { b.textContent = "Copy"; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { select(el); });
  } else {
    select(el);
    try { document.execCommand("copy"); done(); } catch (_) {}
  }
});
function select(el) {
  var r = document.createRange();
  r.selectNodeContents(el);
  var s = window.getSelection();
  s.removeAllRanges();
  s.addRange(r);
}

// A connection's page refreshes its figures in place (state, queue, counts,
// last webhook and record, API usage): every 2 s while work is in flight,
// every 15 s otherwise. Same origin only, as the CSP asks.
(function () {
  var root = document.getElementById("live");
  if (!root || !window.fetch) return;
  var url = root.dataset.live;
  function set(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== String(text)) el.textContent = text;
  }
  function tone(id, cls, on) {
    var el = document.getElementById(id);
    if (el) el.className = "value" + (on ? " " + cls : "");
  }
  function apply(d) {
    var st = d.state;
    var state = document.getElementById("state");
    if (state) { state.textContent = st.label; state.className = "badge " + st.tone; }
    var why = document.getElementById("state-reason");
    if (why) {
      why.hidden = !st.reason;
      why.textContent = st.reason || "";
      why.className = "alert " + st.tone;
    }
    set("queued", d.queued);
    set("synced", d.synced); tone("synced", "ok", d.synced > 0);
    set("skipped", d.skipped); tone("skipped", "warn", d.skipped > 0);
    set("failed", d.failed); tone("failed", "bad", d.failed > 0);
    set("last-webhook", d.last_webhook);
    set("last-written", d.last_written);
    set("usage", d.usage);
    var bar = document.getElementById("usage-bar");
    if (bar) {
      bar.value = d.usage_pct;
      bar.setAttribute("aria-label", "API usage: " + d.usage_pct + "% of the org's daily limit");
    }
    set("tab-skipped", "Skipped (" + d.skipped + ")");
    set("tab-failed", "Failed (" + d.failed + ")");
    root.dataset.refreshed = String(Date.now());
  }
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) { apply(d); setTimeout(tick, d.queued > 0 ? 2000 : 15000); })
      .catch(function () { setTimeout(tick, 30000); });
  }
  setTimeout(tick, 2000);
})();
