"""The web console (`edi serve`): Starlette app, pages, sessions, charts."""
