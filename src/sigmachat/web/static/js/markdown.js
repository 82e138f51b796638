// A small, safe Markdown renderer for model answers.
//
// Written by hand because the usual pair (a markdown library + an HTML sanitiser) ships only
// through npm and this UI has no build step. It never produces HTML strings: it parses the
// text and builds DOM nodes, so every character of model or tool output ends up in a text
// node. Raw HTML in the input is shown as text. Links are kept only for http(s), mailto and
// same-site relative URLs, open in a new tab with rel="noopener noreferrer nofollow", and
// images are shown as links (the page loads nothing from elsewhere).
//
// Supported: ATX headings, paragraphs (single newlines are line breaks, as in chat), fenced
// code blocks (an unclosed fence runs to the end, so streaming code looks right), blockquotes,
// thematic breaks, nested ordered/unordered lists, GFM pipe tables with alignment, inline
// code, strong, emphasis, strikethrough, links, autolinks and backslash escapes.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|[ \t]*$)/;
const TABLE_DELIM = /^ *\|? *:?-{1,}:? *(?:\| *:?-{1,}:? *)*\|? *$/;
const ESCAPABLE = "\\`*_{}[]()#+-.!|~<>\"'";

/** Render markdown text into a DocumentFragment. */
export function renderMarkdown(text, doc = document) {
  const frag = doc.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").replace(/\t/g, "    ").split("\n");
  renderBlocks(lines, frag, doc);
  return frag;
}

function el(doc, tag, attrs) {
  const node = doc.createElement(tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function isBlank(line) {
  return /^\s*$/.test(line);
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function startsBlock(line, next) {
  return (
    FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) ||
    LIST_ITEM.test(line) || isTableStart(line, next)
  );
}

function isTableStart(line, next) {
  return line.includes("|") && next !== undefined && TABLE_DELIM.test(next) && next.includes("-") &&
    splitRow(line).length === splitRow(next).length;
}

function renderBlocks(lines, parent, doc) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) { i++; continue; }

    let m = FENCE.exec(line);
    if (m) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length) {
        const close = lines[i].trim();
        if (close.startsWith(fence[0].repeat(fence.length)) && /^([`~])\1*$/.test(close)) { i++; break; }
        body.push(lines[i]);
        i++;
      }
      const pre = el(doc, "pre");
      const code = el(doc, "code");
      if (m[2]) code.setAttribute("data-lang", m[2].slice(0, 30));
      code.textContent = body.join("\n");
      pre.append(code);
      parent.append(pre);
      continue;
    }

    m = HEADING.exec(line);
    if (m) {
      // Answers sit under the page's own h1/h2, so model headings start at h3.
      const level = Math.min(6, m[1].length + 2);
      const heading = el(doc, `h${level}`);
      renderInline(m[2] || "", heading, doc);
      parent.append(heading);
      i++;
      continue;
    }

    if (HR.test(line)) {
      parent.append(el(doc, "hr"));
      i++;
      continue;
    }

    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const q = QUOTE.exec(lines[i]);
        body.push(q ? q[1] : lines[i]);
        i++;
      }
      const quote = el(doc, "blockquote");
      renderBlocks(body, quote, doc);
      parent.append(quote);
      continue;
    }

    if (isTableStart(line, lines[i + 1])) {
      i = renderTable(lines, i, parent, doc);
      continue;
    }

    if (LIST_ITEM.test(line)) {
      i = renderList(lines, i, parent, doc);
      continue;
    }

    const para = [];
    while (i < lines.length && !isBlank(lines[i]) && !(para.length && startsBlock(lines[i], lines[i + 1]))) {
      para.push(lines[i].trim());
      i++;
    }
    const p = el(doc, "p");
    renderInline(para.join("\n"), p, doc);
    parent.append(p);
  }
}

function renderList(lines, start, parent, doc) {
  const first = LIST_ITEM.exec(lines[start]);
  const baseIndent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = el(doc, ordered ? "ol" : "ul");
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) list.setAttribute("start", String(n));
  }
  const items = [];
  let i = start;
  let loose = false;
  while (i < lines.length) {
    const line = lines[i];
    const m = LIST_ITEM.exec(line);
    if (m && m[1].length === baseIndent && /\d/.test(m[2]) === ordered) {
      const contentIndent = m[1].length + m[2].length + 1;
      items.push({ lines: [m[3] || ""], contentIndent });
      i++;
      continue;
    }
    if (m && m[1].length < baseIndent) break;
    if (!items.length) break;
    const item = items[items.length - 1];
    if (isBlank(line)) {
      // A blank line continues the list only if what follows is still part of it.
      const next = lines[i + 1];
      if (next === undefined || isBlank(next)) break;
      const nm = LIST_ITEM.exec(next);
      if (indentOf(next) >= item.contentIndent || (nm && nm[1].length === baseIndent && /\d/.test(nm[2]) === ordered)) {
        if (!(indentOf(next) >= item.contentIndent)) loose = true;
        item.lines.push("");
        i++;
        continue;
      }
      break;
    }
    if (indentOf(line) > baseIndent) {
      // Nested content: strip the item's indentation (up to its content column).
      const strip = Math.min(indentOf(line), item.contentIndent);
      item.lines.push(line.slice(strip));
      i++;
      continue;
    }
    if (m || startsBlock(line, lines[i + 1])) break;
    item.lines.push(line.trim()); // lazy continuation of the item's paragraph
    i++;
  }
  for (const item of items) {
    const li = el(doc, "li");
    const simple = !loose && item.lines.every((l) => !isBlank(l) && !startsBlock(l));
    if (simple) {
      renderInline(item.lines.join("\n"), li, doc);
    } else {
      renderBlocks(item.lines, li, doc);
      // Tight items with a nested list render their first paragraph inline.
      if (!loose && li.firstChild && li.firstChild.nodeName === "P") {
        const p = li.firstChild;
        while (p.firstChild) li.insertBefore(p.firstChild, p);
        p.remove();
      }
    }
    list.append(li);
  }
  parent.append(list);
  return i;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const cells = [];
  let cur = "";
  let inCode = false;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === "\\" && s[k + 1] === "|") { cur += "|"; k++; continue; }
    if (c === "`") inCode = !inCode;
    if (c === "|" && !inCode) { cells.push(cur.trim()); cur = ""; continue; }
    cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

function renderTable(lines, start, parent, doc) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((c) => {
    const left = c.startsWith(":");
    const right = c.endsWith(":");
    return right && left ? "center" : right ? "right" : left ? "left" : null;
  });
  const wrap = el(doc, "div", { class: "table-wrap" });
  const table = el(doc, "table");
  const thead = el(doc, "thead");
  const tr = el(doc, "tr");
  header.forEach((cell, k) => {
    const th = el(doc, "th", { scope: "col" });
    if (aligns[k]) th.className = `align-${aligns[k]}`;
    renderInline(cell, th, doc);
    tr.append(th);
  });
  thead.append(tr);
  table.append(thead);
  const tbody = el(doc, "tbody");
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
    const cells = splitRow(lines[i]);
    const row = el(doc, "tr");
    for (let k = 0; k < header.length; k++) {
      const td = el(doc, "td");
      if (aligns[k]) td.className = `align-${aligns[k]}`;
      renderInline(cells[k] ?? "", td, doc);
      row.append(td);
    }
    tbody.append(row);
    i++;
  }
  table.append(tbody);
  wrap.append(table);
  parent.append(wrap);
  return i;
}

/** A URL we are willing to put in href, or null. */
export function safeUrl(raw) {
  const url = String(raw || "").trim().replace(/^<|>$/g, "");
  if (!url || /[\u0000-\u001f\s]/.test(url)) return null;
  if (/^(https?:|mailto:)/i.test(url)) return url;
  // Relative links stay on our site; "//host" is protocol-relative (elsewhere): refuse.
  if (/^(\/(?!\/)|#|\?)/.test(url)) return url;
  return null;
}

function link(doc, href, text) {
  const a = el(doc, "a", { href, rel: "noopener noreferrer nofollow" });
  if (/^(https?:|mailto:)/i.test(href)) a.setAttribute("target", "_blank");
  if (typeof text === "string") a.textContent = text;
  return a;
}

/** Render inline markdown of `text` into `parent`. */
export function renderInline(text, parent, doc = document) {
  let buf = "";
  const flush = () => {
    if (buf) { parent.append(doc.createTextNode(buf)); buf = ""; }
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];

    if (c === "\\" && i + 1 < text.length) {
      if (text[i + 1] === "\n") { flush(); parent.append(el(doc, "br")); i += 2; continue; }
      if (ESCAPABLE.includes(text[i + 1])) { buf += text[i + 1]; i += 2; continue; }
    }

    if (c === "\n") {
      flush();
      parent.append(el(doc, "br"));
      i++;
      continue;
    }

    if (c === "`") {
      let n = 1;
      while (text[i + n] === "`") n++;
      const ticks = "`".repeat(n);
      let close = text.indexOf(ticks, i + n);
      while (close !== -1 && text[close + n] === "`") close = text.indexOf(ticks, close + n + 1);
      if (close !== -1) {
        flush();
        const code = el(doc, "code");
        let body = text.slice(i + n, close).replace(/\n/g, " ");
        if (/^ .* $/.test(body) && body.trim()) body = body.slice(1, -1);
        code.textContent = body;
        parent.append(code);
        i = close + n;
        continue;
      }
      buf += ticks;
      i += n;
      continue;
    }

    if (c === "!" && text[i + 1] === "[") {
      const parsed = parseLink(text, i + 1);
      if (parsed) {
        flush();
        // Images are not loaded (no third-party requests); show their description as a link.
        const href = safeUrl(parsed.url);
        const label = `🖼 ${parsed.label || "image"}`;
        parent.append(href ? link(doc, href, label) : doc.createTextNode(label));
        i = parsed.end;
        continue;
      }
    }

    if (c === "[") {
      const parsed = parseLink(text, i);
      if (parsed) {
        flush();
        const href = safeUrl(parsed.url);
        if (href) {
          const a = link(doc, href);
          if (parsed.title) a.setAttribute("title", parsed.title);
          renderInline(parsed.label, a, doc);
          parent.append(a);
        } else {
          renderInline(parsed.label, parent, doc);
        }
        i = parsed.end;
        continue;
      }
    }

    if (c === "<") {
      const m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(text.slice(i));
      if (m) {
        flush();
        parent.append(link(doc, m[1], m[1]));
        i += m[0].length;
        continue;
      }
    }

    if ((c === "h" || c === "H") && /^https?:\/\//i.test(text.slice(i, i + 8)) && (i === 0 || /[\s(]/.test(text[i - 1]))) {
      const m = /^https?:\/\/[^\s<>"]+/i.exec(text.slice(i));
      let url = m[0].replace(/[.,;:!?)\]'"*_]+$/, "");
      if (url.length > 8) {
        flush();
        parent.append(link(doc, url, url));
        i += url.length;
        continue;
      }
    }

    if (c === "*" || c === "_" || c === "~") {
      const span = parseEmphasis(text, i);
      if (span) {
        flush();
        const node = el(doc, span.tag);
        renderInline(span.inner, node, doc);
        parent.append(node);
        i = span.end;
        continue;
      }
      // A run of delimiters that opens nothing is literal text.
      let n = 1;
      while (text[i + n] === c) n++;
      buf += c.repeat(n);
      i += n;
      continue;
    }

    buf += c;
    i++;
  }
  flush();
}

function parseLink(text, start) {
  // [label](url "title") with nested brackets in the label and balanced parens in the url.
  let depth = 0;
  let k = start;
  for (; k < text.length; k++) {
    if (text[k] === "\\") { k++; continue; }
    if (text[k] === "[") depth++;
    else if (text[k] === "]") { depth--; if (depth === 0) break; }
  }
  if (depth !== 0 || text[k + 1] !== "(") return null;
  const label = text.slice(start + 1, k);
  let j = k + 2;
  let parens = 1;
  for (; j < text.length; j++) {
    if (text[j] === "\\") { j++; continue; }
    if (text[j] === "(") parens++;
    else if (text[j] === ")") { parens--; if (parens === 0) break; }
    else if (text[j] === "\n") return null;
  }
  if (parens !== 0) return null;
  const inside = text.slice(k + 2, j).trim();
  const m = /^(<[^>]*>|\S+)(?:\s+(?:"([^"]*)"|'([^']*)'))?$/.exec(inside);
  if (!m && inside) return null;
  return { label, url: m ? m[1] : "", title: m ? (m[2] ?? m[3] ?? null) : null, end: j + 1 };
}

function parseEmphasis(text, i) {
  const c = text[i];
  let n = 1;
  while (text[i + n] === c) n++;
  if (c === "~" && n !== 2) return null;
  const after = text[i + n];
  const before = i > 0 ? text[i - 1] : " ";
  if (after === undefined || /\s/.test(after)) return null; // must be left-flanking
  if (c === "_" && /[\p{L}\p{N}]/u.test(before)) return null; // snake_case stays literal
  if (c === "*" && /\d/.test(before) && /\d/.test(after)) return null; // 2*3*4 is arithmetic
  const tries = c === "~" ? [2] : n >= 3 ? [3, 2, 1] : [n];
  for (const size of tries) {
    const delim = c.repeat(size);
    let k = i + size;
    while (k < text.length) {
      const close = text.indexOf(delim, k);
      if (close === -1) break;
      let run = 0;
      while (text[close + run] === c) run++;
      if (run !== size && size !== 3) {
        k = close + run; // a run of another length belongs to a nested span: skip it whole
        continue;
      }
      const prev = text[close - 1];
      const next = text[close + size];
      const rightFlanking = close > i + size && !/\s/.test(prev);
      const wordOk = c !== "_" || next === undefined || !/[\p{L}\p{N}]/u.test(next);
      if (rightFlanking && wordOk && prev !== "\\") {
        const inner = text.slice(i + size, close);
        if (inner.includes("\n\n")) return null;
        if (size === 3) return { tag: "strong", inner: `${c}${inner}${c}`, end: close + 3 };
        const tag = c === "~" ? "del" : size === 2 ? "strong" : "em";
        return { tag, inner, end: close + size };
      }
      k = close + 1;
    }
  }
  return null;
}
