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
  gateOnImages(form);
  // One answer per page: ignore further clicks while the first one is on its way.
  // (The server also accepts a repeated identical answer, so this is only cosmetic.)
  var sending = false;
  form.addEventListener("submit", function (event) {
    if (sending || form.classList.contains("loading")) { event.preventDefault(); return; }
    sending = true;
    form.classList.add("sending");
  });
});

// A vote compares pictures, so the options take one only once every picture is drawn.
// The time that took (ms since this page was requested, i.e. since the previous click)
// travels with the vote as the field "l"; the server stores it beside the answer, and an
// answer without it was cast on a page that could not say (no JavaScript).
function gateOnImages(form) {
  var images = Array.prototype.slice.call(form.querySelectorAll("img"));
  var buttons = form.querySelectorAll("button.option");
  var retries = 0;
  var open = false;
  function loaded(img) { return img.complete && img.naturalWidth > 0; }
  function setDisabled(value) {
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = value;
  }
  function check() {
    if (open || !images.every(loaded)) return;
    open = true;
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "l";
    field.value = String(Math.max(0, Math.round(window.performance ? performance.now() : 0)));
    form.appendChild(field);
    form.classList.remove("loading", "failed");
    form.removeAttribute("aria-busy");
    setDisabled(false);
  }
  if (images.every(loaded)) { check(); return; }
  form.classList.add("loading");
  form.setAttribute("aria-busy", "true");
  setDisabled(true);
  images.forEach(function (img) {
    img.addEventListener("load", check);
    // A picture that failed (a dropped connection, a busy server) is asked for again, a
    // little later each time; the options stay closed until it arrives.
    img.addEventListener("error", function () {
      retries += 1;
      if (retries > 20) {
        form.classList.add("failed");
        return;
      }
      var src = img.getAttribute("src");
      window.setTimeout(function () { img.src = src; }, Math.min(500 * retries, 5000));
    });
  });
  check();
}
