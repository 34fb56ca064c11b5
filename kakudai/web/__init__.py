"""The local web page: ``kakudai serve`` (needs the ``web`` extra: starlette, uvicorn,
python-multipart). Import :mod:`kakudai.web.server` for the app."""
