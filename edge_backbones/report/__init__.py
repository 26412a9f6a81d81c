"""Accuracy-vs-latency reports: measure on each device, merge, render.

`edge-backbones report` fills one JSON per device (`records`) through
`collect`, which exports a recipe (`recipe`) or takes exported artifacts and
times each row in a fresh process (`worker`), counting MACs from the .tflite
itself (`runtime.macs`). `merge` joins devices and derives the ratios and budget
picks; `render` and `plot` write Markdown, HTML, CSV and the Pareto PNG.
"""
