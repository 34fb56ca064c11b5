"""Model families, one file each. Importing this package registers them all."""

from . import bicubic, espcn, implicit, ksr, rednet, srcnn, unet  # noqa: F401  (registration side effects)
