"""The web UI (``dpc ui``) and the page ``dpc lineage --format html`` writes.

One front end (``static/app.js``, ``static/app.css``, the vendored dagre layout engine)
serves both: the server links the files, the static page inlines them with the graph.
Starlette and uvicorn (the ``dpc-core[ui]`` extra) are imported only by
:mod:`dpc_core.ui.server`.
"""
