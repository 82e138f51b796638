"""The browser UI (a static single-page app of plain ES modules) and the routes that serve it."""
