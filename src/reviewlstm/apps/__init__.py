"""The surfaces a person meets: the command line (cli.py), the REST service and its web page
(service/, html.py, web/), and scoring on a Ray cluster (ray_scoring.py).

They reach the library through the facade, `reviewlstm.api`, and the public names of the folders
below it; nothing below imports them. The service is imported only by `reviewlstm serve`.
"""
