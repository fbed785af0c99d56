// Quiz mode: every claim box on a page shows only what the note says, with its verdict, findings and
// correction folded, so that a reader can guess first; clicking a box reveals it. The switch sits above the
// page's content; its state is kept in localStorage and can be set from the address (?quiz=1 or ?quiz=0).
(() => {
  const KEY = "workbook-quiz-mode";

  function setMode(on, boxes, toggle) {
    document.body.classList.toggle("quiz-mode", on);
    toggle.checked = on;
    if (!on) boxes.forEach(box => box.classList.remove("revealed"));
    try { localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* storage may be off on file:// */ }
  }

  function start() {
    const boxes = [...document.querySelectorAll("div.admonition.claim")];
    if (!boxes.length) return;
    boxes.forEach(box => {
      const says = box.querySelector(":scope > p:not(.admonition-title)");
      if (says) says.classList.add("claim-says");
      const prompt = document.createElement("p");
      prompt.className = "quiz-prompt";
      prompt.textContent = "Holds, qualified or refuted? Click to reveal the verdict and the evidence.";
      box.insertBefore(prompt, says ? says.nextSibling : box.firstChild);
      box.addEventListener("click", () => {
        if (document.body.classList.contains("quiz-mode")) box.classList.add("revealed");
      });
    });
    const label = document.createElement("label");
    label.className = "quiz-switch";
    const toggle = document.createElement("input");
    toggle.type = "checkbox";
    toggle.name = "quiz-mode";
    label.append(toggle, " Quiz mode: hide the verdicts and guess first");
    // Above the page's first heading, inside the article (not above the theme's whole layout).
    const article = document.querySelector(".bd-article, article[role=main], article") || document.body;
    const heading = article.querySelector("h1");
    const anchor = heading ? heading.closest("section") || heading : article.firstChild;
    anchor.parentNode.insertBefore(label, anchor);
    toggle.addEventListener("change", () => setMode(toggle.checked, boxes, toggle));
    const asked = new URLSearchParams(location.search).get("quiz");
    let stored = null;
    try { stored = localStorage.getItem(KEY); } catch (e) { /* ignore */ }
    setMode(asked !== null ? asked === "1" : stored === "1", boxes, toggle);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
