// Moorage UI helpers: copy buttons, select-all checkboxes, confirmations, dismissible alerts,
// selects that submit their form on change (data-autosubmit).
// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  function copy(button) {
    var text = button.getAttribute("data-copy");
    var done = function () {
      var old = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = old; button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  function updateSelection(form) {
    var boxes = form.querySelectorAll("input[type=checkbox][data-select-item]");
    var checked = form.querySelectorAll("input[type=checkbox][data-select-item]:checked").length;
    form.querySelectorAll("[data-needs-selection]").forEach(function (el) { el.disabled = checked === 0; });
    form.querySelectorAll("[data-selection-count]").forEach(function (el) {
      el.textContent = checked ? checked + " selected" : "";
    });
    var all = form.querySelector("input[type=checkbox][data-select-all]");
    if (all) {
      all.checked = checked > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var button = target.closest("[data-copy]");
    if (button) { event.preventDefault(); copy(button); return; }
    var dismiss = target.closest("[data-dismiss]");
    if (dismiss && dismiss.parentElement) { dismiss.parentElement.remove(); }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
      target.form.requestSubmit();
      return;
    }
    if (!(target instanceof HTMLInputElement) || !target.form) { return; }
    if (target.hasAttribute("data-select-all")) {
      target.form.querySelectorAll("input[type=checkbox][data-select-item]").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (target.hasAttribute("data-select-all") || target.hasAttribute("data-select-item")) {
      updateSelection(target.form);
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  function init(root) {
    root.querySelectorAll("form").forEach(function (form) {
      if (form.querySelector("[data-select-item]")) { updateSelection(form); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
})();
