// Progressive enhancement only: the pages work without it.
document.addEventListener("DOMContentLoaded", function () {
  // Move focus to the error summary so screen readers announce it and keyboard users start there.
  var summary = document.querySelector("[data-error-summary]") || document.querySelector("[data-focus-panel]");
  if (summary) { summary.focus(); }
  // A second click on a submit button does not send the form again.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
    });
  });
});
