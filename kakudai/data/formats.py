"""The file extensions kakudai reads and writes, and the input size guard.

Plain constants with no imports, so that the command line can build its
options (and answer ``--help``) without loading Pillow, numpy or torch;
:mod:`kakudai.data.io` re-exports them.
"""

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "FORMAT_EXTENSIONS", "DEFAULT_MAX_PIXELS"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
# Containers kakudai.infer.video reads and writes (PyAV picks the muxer from the extension).
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                    ".m2ts", ".mts", ".wmv", ".flv", ".3gp", ".ogv"}
# Pillow format name for each output extension we write.
FORMAT_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
                     ".tiff": "TIFF", ".bmp": "BMP", ".gif": "GIF", ".ppm": "PPM", ".pgm": "PPM"}
DEFAULT_MAX_PIXELS = 300_000_000  # 300 megapixels: far above any camera, far below a bomb
