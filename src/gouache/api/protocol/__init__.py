"""The wire types of the OpenAI APIs Gouache speaks, one module per API (as vLLM's `protocol.py`): requests
validated strictly, answers shaped field by field as OpenAI's. Routers translate between these and the
service layer's plain data; nothing below `api/` sees them.
"""
