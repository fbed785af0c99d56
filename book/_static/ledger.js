// The ledger as a tool: filter by verdict, chapter, question id and free text (also from the URL:
// ledger.html?verdict=refuted&chapter=losses&seed=S002-41&q=batchnorm), count the rows shown, sort by a
// column's header. Plain JavaScript shipped with the site; nothing is fetched.
(function () {
  "use strict";
  function setup() {
    var tool = document.getElementById("ledger-tool");
    if (!tool) { return; }
    var form = tool.querySelector("form");
    var rows = Array.prototype.slice.call(tool.querySelectorAll("tbody tr"));
    var count = tool.querySelector(".ledger-count");
    var params = new URLSearchParams(window.location.search);
    ["verdict", "chapter", "seed", "q"].forEach(function (name) {
      if (params.has(name)) { form.elements[name].value = params.get(name); }
    });
    function apply() {
      var verdict = form.elements.verdict.value;
      var chapter = form.elements.chapter.value;
      var seed = form.elements.seed.value.trim().toUpperCase();
      var words = form.elements.q.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var text = (row.getAttribute("data-ids") + " " + row.textContent).toLowerCase();
        var ok = (!verdict || row.getAttribute("data-verdict") === verdict) &&
          (!chapter || row.getAttribute("data-chapter") === chapter) &&
          (!seed || row.getAttribute("data-seeds").split(" ").indexOf(seed) >= 0) &&
          words.every(function (w) { return text.indexOf(w) >= 0; });
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = shown + " of " + rows.length + " claims";
      var query = new URLSearchParams();
      ["verdict", "chapter", "seed", "q"].forEach(function (name) {
        var value = form.elements[name].value.trim();
        if (value) { query.set(name, value); }
      });
      var search = query.toString();
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", search ? "?" + search : window.location.pathname);
      }
    }
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    var headers = tool.querySelectorAll("th[data-sort]");
    Array.prototype.forEach.call(headers, function (th) {
      th.setAttribute("role", "button");
      th.setAttribute("tabindex", "0");
      th.title = "sort by " + th.textContent;
      function sort() {
        var index = Array.prototype.indexOf.call(th.parentNode.children, th);
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = tool.querySelector("tbody");
        rows.slice().sort(function (a, b) {
          var x = a.children[index].getAttribute("data-value") || a.children[index].textContent;
          var y = b.children[index].getAttribute("data-value") || b.children[index].textContent;
          return ascending ? x.localeCompare(y) : y.localeCompare(x);
        }).forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) { if (event.key === "Enter") { sort(); } });
    });
    apply();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setup); } else { setup(); }
}());
