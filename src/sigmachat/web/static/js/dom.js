// Small DOM helpers. Everything on screen is built with createElement/createTextNode:
// no string of ours, the model's or a tool's ever goes through an HTML parser.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * h("button", {class: "btn", onclick: fn, "aria-label": "Close"}, "text", childNode, [more])
 * Attribute values of null/undefined/false are skipped; true sets an empty attribute.
 * Children may be strings (become text nodes), nodes, arrays, or null (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function setAttrs(el, attrs) {
  if (!attrs) return el;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "text") {
      el.textContent = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Icons are fixed path data of ours (never user input), drawn with the SVG DOM API.
const ICONS = {
  check: ["M5 12.5l4.5 4.5L19 7.5"],
  thumbUp: ["M7 11v9H4v-9z", "M7 11l4-7c1.5 0 2.5 1 2.5 2.5L13 10h5.5a2 2 0 0 1 2 2.3l-1.2 6A2 2 0 0 1 17.3 20H7"],
  thumbDown: ["M7 13V4H4v9z", "M7 13l4 7c1.5 0 2.5-1 2.5-2.5L13 14h5.5a2 2 0 0 0 2-2.3l-1.2-6A2 2 0 0 0 17.3 4H7"],
  memory: ["M12 3a6 6 0 0 0-6 6c0 2.2 1.2 3.6 2.3 4.6.7.7 1.2 1.4 1.2 2.4h5c0-1 .5-1.7 1.2-2.4C16.8 12.6 18 11.2 18 9a6 6 0 0 0-6-6z", "M10 19h4M10.5 21.5h3"],
  x: ["M6 6l12 12M18 6L6 18"],
  pencil: ["M4 20h4L19 9l-4-4L4 16z", "M13.5 6.5l4 4"],
  trash: ["M4 7h16", "M10 11v6M14 11v6", "M6 7l1 13h10l1-13", "M9 7V4h6v3"],
  chevron: ["M9 6l6 6-6 6"],
  retry: ["M20 11a8 8 0 1 0-2.3 5.7", "M20 4v7h-7"],
  wrench: ["M14.5 6.5a4 4 0 0 0-5.4 5.1L4 16.7V20h3.3l5.1-5.1a4 4 0 0 0 5.1-5.4l-2.6 2.6-2.4-.6-.6-2.4z"],
  spark: ["M12 3l1.8 5.2L19 10l-5.2 1.8L12 17l-1.8-5.2L5 10l5.2-1.8z"],
  alert: ["M12 4l9 16H3z", "M12 10v4", "M12 17v.5"],
  stop: ["M7 7h10v10H7z"],
  offline: ["M4 12a8 8 0 0 1 13.7-5.6", "M20 12a8 8 0 0 1-13.7 5.6", "M3 3l18 18"],
  chart: ["M4 20V10M10 20V4M16 20v-7M22 20H2"],
  shield: ["M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z"],
  pie: ["M12 3v9h9", "M21 12a9 9 0 1 1-9-9"],
  bolt: ["M13 2L4 14h7l-1 8 9-12h-7z"],
};

export function icon(name, cls = "icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", cls);
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

export function spinner() {
  return h("span", { class: "spinner", "aria-hidden": "true" });
}

/** Format milliseconds for people: 840 ms, 1.2 s, 1 min 05 s. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
  const min = Math.floor(ms / 60000);
  const sec = Math.round((ms % 60000) / 1000);
  return `${min} min ${String(sec).padStart(2, "0")} s`;
}

/** "Just now", "5 min ago", "Yesterday", "12 Mar". */
export function formatWhen(iso, now = new Date()) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const diff = (now - when) / 1000;
  if (diff < 60) return "Just now";
  if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  const sameDay = when.toDateString() === now.toDateString();
  if (sameDay) return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (when.toDateString() === yesterday.toDateString()) return "Yesterday";
  return when.toLocaleDateString([], { day: "numeric", month: "short" });
}

export function uuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(signal.reason || new DOMException("Aborted", "AbortError"));
    const timer = setTimeout(resolve, ms);
    if (signal) {
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(signal.reason || new DOMException("Aborted", "AbortError"));
      }, { once: true });
    }
  });
}
