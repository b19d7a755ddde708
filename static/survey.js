// Participant pages: small progressive enhancements; everything also works without JS.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form.options");
  if (!form) return;
  // The next item arrives as the reply to the answer POST; show the participant's own
  // address so a reload re-asks the server for the current item instead of re-posting.
  var home = form.getAttribute("data-home");
  if (home && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", home);
  }
  // One answer per page: ignore further clicks while the first one is on its way.
  // (The server also accepts a repeated identical answer, so this is only cosmetic.)
  var sending = false;
  form.addEventListener("submit", function (event) {
    if (sending) { event.preventDefault(); return; }
    sending = true;
    form.classList.add("sending");
  });
});
