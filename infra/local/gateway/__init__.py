"""The local API Gateway and web host: one HTTP server for the template's routes, `/_local/` and the web page.

- `server.py`: `Gateway`, which routes each request;
- `events.py`: a request as the HTTP API's payload v2 event, and a function's reply as HTTP;
- `static.py`: the web page; `web_headers.py`: its headers from `web/_headers`, as the host serves them.
"""
