// The sign-in page: email/password, one-click demo accounts, and the reason we are here
// (session expired, signed out).

import { ApiError, api } from "./api.js";
import { h } from "./dom.js";
import { bindThemeToggle } from "./theme-toggle.js";

const DEMO_PASSWORD = "demo12345";
const DEMO_USERS = [
  { email: "demo_individual@sigmasight.com", name: "Individual investor", about: "Balanced: mutual funds and growth stocks" },
  { email: "demo_hnw@sigmasight.com", name: "High net worth", about: "Public equities plus private investments" },
  { email: "demo_hedgefundstyle@sigmasight.com", name: "Hedge-fund style", about: "Long/short equity with an options overlay" },
  { email: "demo_familyoffice@sigmasight.com", name: "Family office", about: "Two portfolios: public growth and private" },
];

const form = document.getElementById("login-form");
const email = document.getElementById("email");
const password = document.getElementById("password");
const submit = document.getElementById("login-submit");
const notice = document.getElementById("login-notice");
const quick = document.getElementById("quick-list");
const theme = document.getElementById("theme-toggle");

function show(text, kind = "error") {
  notice.textContent = text;
  notice.className = `notice notice-${kind}`;
  notice.hidden = !text;
}

const params = new URLSearchParams(location.search);
if (params.has("expired")) show("Your session has expired. Please sign in again.", "info");
else if (params.has("signed_out")) show("You have been signed out.", "info");

function busy(on) {
  for (const b of document.querySelectorAll("button")) b.disabled = on;
  submit.textContent = on ? "Signing in…" : "Sign in";
}

async function signIn(addr, pass) {
  busy(true);
  show("");
  try {
    await api.login(addr, pass);
    window.location.replace("/");
  } catch (e) {
    busy(false);
    if (e instanceof ApiError && e.status === 401) show("That email and password don't match an account.");
    else if (e instanceof ApiError && e.status === 422) show("Enter an email address and a password.");
    else if (e instanceof ApiError && e.status === 429) show("Too many attempts. Wait a moment and try again.");
    else show("Couldn't reach the server. Check your connection and try again.");
    password.focus();
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  if (!email.value.trim() || !password.value) {
    show("Enter an email address and a password.");
    (email.value.trim() ? password : email).focus();
    return;
  }
  signIn(email.value.trim(), password.value);
});

for (const user of DEMO_USERS) {
  quick.append(h("li", null,
    h("button", {
      type: "button", class: "quick-pick", "aria-label": `Sign in as ${user.name} (${user.email})`,
      onclick: () => { email.value = user.email; password.value = DEMO_PASSWORD; signIn(user.email, DEMO_PASSWORD); },
    },
      h("span", { class: "quick-avatar", "aria-hidden": "true" }, user.name[0]),
      h("span", { class: "quick-text" },
        h("span", { class: "quick-name" }, user.name),
        h("span", { class: "quick-about" }, user.about),
        h("span", { class: "quick-email" }, user.email)),
    )));
}

bindThemeToggle(theme);
email.focus();
