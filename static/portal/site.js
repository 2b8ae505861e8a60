// Progressive enhancement only: the pages work without it.
document.addEventListener("DOMContentLoaded", function () {
  // Move focus to the error summary so screen readers announce it and keyboard users start there.
  var summary = document.querySelector("[data-error-summary]") || document.querySelector("[data-focus-panel]");
  if (summary) { summary.focus(); }
  // The hold warning (WCAG 2.2.1): shown before the hold ends, in a live alert region.
  var warning = document.querySelector("[data-hold-warning]");
  if (warning) {
    var left = parseInt(warning.dataset.secondsLeft, 10) - parseInt(warning.dataset.warnBefore, 10);
    window.setTimeout(function () {
      warning.textContent = warning.dataset.message;
      warning.classList.add("hold-warning-shown");
    }, Math.max(0, left) * 1000);
  }
  // A second click on a submit button does not send the form again.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
    });
  });
});
