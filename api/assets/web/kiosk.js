// The kiosk's progressive enhancement: an on-screen keypad for the forms'
// fields and a reset to the home screen after a while without input. The
// forms work without it (a physical keyboard types into the same fields).
(function () {
  "use strict";

  // Idle reset: back to the point's home after `data-kiosk-idle` seconds
  // without a touch, a click or a key (the next person must not see the
  // last one's screen).
  var screen = document.querySelector("[data-kiosk-home]");
  var home = screen ? screen.getAttribute("data-kiosk-home") : null;
  var idle = screen ? parseInt(screen.getAttribute("data-kiosk-idle") || "", 10) : 0;
  if (home && idle > 0) {
    var timer = null;
    var arm = function () {
      if (timer !== null) {
        window.clearTimeout(timer);
      }
      timer = window.setTimeout(function () {
        window.location.assign(home);
      }, idle * 1000);
    };
    ["pointerdown", "keydown", "input", "touchstart", "wheel"].forEach(function (name) {
      document.addEventListener(name, arm, { passive: true, capture: true });
    });
    arm();
  }

  // Keypads: rendered hidden by the server (so a page without scripts shows
  // none), shown here and wired to the field they name.
  var keypads = document.querySelectorAll("[data-keypad]");
  Array.prototype.forEach.call(keypads, function (pad) {
    var field = document.getElementById(pad.getAttribute("data-keypad"));
    if (!field) {
      return;
    }
    pad.hidden = false;
    pad.addEventListener("click", function (event) {
      var key = event.target.closest("[data-key]");
      if (!key) {
        return;
      }
      event.preventDefault();
      var value = key.getAttribute("data-key");
      var max = parseInt(field.getAttribute("maxlength") || "0", 10);
      if (value === "del") {
        field.value = field.value.slice(0, -1);
      } else if (value === "clear") {
        field.value = "";
      } else if (!(max > 0 && field.value.length >= max)) {
        field.value += value;
      }
      field.dispatchEvent(new Event("input", { bubbles: true }));
    });
  });
})();
