// Shared by every console page (progressive enhancement: pages work without it).
// A submitted form's buttons are disabled until the answer arrives, so a
// double tap does not send the same form twice.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.dataset.multiple !== undefined) return;
  window.setTimeout(() => {
    for (const button of form.querySelectorAll("button[type=submit], button:not([type])")) button.disabled = true;
  }, 0);
});
