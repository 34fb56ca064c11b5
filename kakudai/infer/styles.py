"""The image styles the upscaler tells apart (no heavy imports: the CLI's parser lists them).

``photo``; ``illustration``: drawn images (flat colour, line art); ``manga``: gray
drawings (manga pages with their screentone, ink drawings). Each has its own models
(:mod:`kakudai.zoo`); :func:`kakudai.infer.auto.style_of` reads which one an image is.
"""

STYLES = ("photo", "illustration", "manga")
