// Applies the saved (or the system's) colour theme before first paint, so a dark-theme user
// never sees a white flash. A classic script on purpose: modules run after parsing.
(function () {
  var theme = null;
  try { theme = localStorage.getItem("sigmachat.theme"); } catch (e) { /* storage disabled */ }
  if (theme !== "light" && theme !== "dark") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.dataset.theme = theme;
})();
