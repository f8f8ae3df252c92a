"""The HTTP edge: the ASGI application and its routes, the bounded server, the client APIs' request
checks, and what the router says about itself.
"""
