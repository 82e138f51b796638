"""The markdown renderer, run in the browser it is written for: structure and safety."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

RENDER = """async (src) => {
  const { renderMarkdown } = await import('/static/js/markdown.js');
  const box = document.createElement('div');
  box.append(renderMarkdown(src));
  document.body.append(box);
  const all = [...box.querySelectorAll('*')];
  return {
    html: box.innerHTML,
    text: box.textContent,
    tags: all.map(e => e.tagName.toLowerCase()),
    attrs: all.flatMap(e => [...e.attributes].map(a => a.name + '=' + a.value)),
    links: [...box.querySelectorAll('a')].map(a => ({href: a.getAttribute('href'), rel: a.rel, target: a.target,
                                                     text: a.textContent})),
  };
}"""

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "[click](javascript:window.__pwned=1)",
    "[click](JaVaScRiPt:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=//evil.example></iframe>",
    "[proto-relative](//evil.example/x)",
    "| a | b |\n|---|---|\n| <svg onload=alert(1)> | `<b>` |",
    "**<img src=x onerror=alert(1)>**",
    "```html\n<script>alert(1)</script>\n```",
    "<style>body{display:none}</style>",
]


@pytest.fixture(scope="module")
def md(browser, live_server):
    # One page for the module: these tests only call a pure function in it.
    ctx = browser.new_context(base_url=live_server.url)
    page = ctx.new_page()
    page.goto("/login")  # any page of ours: the module loads from our origin under our CSP

    def render(src: str) -> dict:
        return page.evaluate(RENDER, src)

    render.page = page
    yield render
    ctx.close()


@pytest.mark.parametrize("src", HOSTILE)
def test_model_or_tool_output_cannot_inject_markup_or_script(md, src):
    out = md(src)
    assert not set(out["tags"]) & {"script", "img", "iframe", "svg", "style", "object", "embed", "b"}
    assert not [a for a in out["attrs"] if a.split("=")[0].startswith("on") or a.startswith("style=")]
    for link in out["links"]:
        assert link["href"].startswith(("http://", "https://", "mailto:", "/", "#", "?")), link
        assert not link["href"].startswith("//")
    assert md.page.evaluate("window.__pwned") is None


def test_tables_lists_emphasis_code_and_headings_render_as_elements(md):
    out = md(
        "## Top holdings\n\n"
        "Your **largest** position is *NVDA* with `12.5%` of ~~gross~~ NAV.\n\n"
        "| Symbol | Weight |\n| :--- | ---: |\n| NVDA | 12.5% |\n| AAPL | 8.1% |\n\n"
        "1. First\n2. Second\n   - nested\n\n"
        "> quoted\n\n"
        "```\ncode block\n```\n\n"
        "See [the docs](https://example.com/docs) and https://example.org."
    )
    tags = out["tags"]
    for tag in (
        "h4",
        "strong",
        "em",
        "code",
        "del",
        "table",
        "thead",
        "tbody",
        "th",
        "td",
        "ol",
        "ul",
        "li",
        "blockquote",
        "pre",
    ):
        assert tag in tags, (tag, out["html"])
    assert 'class="align-right"' in out["html"]
    assert {
        "href": "https://example.com/docs",
        "rel": "noopener noreferrer nofollow",
        "target": "_blank",
        "text": "the docs",
    } in out["links"]
    assert any(link["href"] == "https://example.org" for link in out["links"])


def test_partial_markdown_while_streaming_renders_sensibly(md):
    # An unclosed fence runs to the end; an unclosed ** stays literal text.
    assert "pre" in md("Here:\n```python\nx = 1")["tags"]
    out = md("This is **bol")
    assert "strong" not in out["tags"] and out["text"] == "This is **bol"


def test_snake_case_and_arithmetic_stay_literal(md):
    out = md("Call get_portfolio_risk with 2*3*4 and file_name_here.")
    assert "em" not in out["tags"]
    assert out["text"] == "Call get_portfolio_risk with 2*3*4 and file_name_here."


def test_a_streaming_bold_or_code_span_renders_closed_while_it_grows(md):
    close = """async (src) => (await import('/static/js/render.js')).closeDangling(src)"""
    page = md.page
    assert page.evaluate(close, "Your largest is **HOME_EQ") == "Your largest is **HOME_EQ**"
    assert page.evaluate(close, "Use `get_port") == "Use `get_port`"
    assert page.evaluate(close, "**done** and more") == "**done** and more"
    assert page.evaluate(close, "```\ncode **x") == "```\ncode **x"  # inside a fence: left alone
