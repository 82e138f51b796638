// The light/dark toggle button shared by every page: flips the theme, remembers it, and keeps
// the button's accessible label and pressed state in step.

export function bindThemeToggle(button) {
  const label = () => {
    const dark = document.documentElement.dataset.theme === "dark";
    button.setAttribute("aria-label", dark ? "Switch to light theme" : "Switch to dark theme");
    button.setAttribute("aria-pressed", String(dark));
  };
  button.addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("sigmachat.theme", next); } catch { /* storage disabled */ }
    label();
  });
  label();
}
