"""GalaxySD Studio core: GZ2 schema and captions, weighted prompts, diffusion pipeline, training,
classifier, metrics, candidate search and stores. See README.md and ARCHITECTURE.md."""
from galaxysd_core.errors import (GalaxySDChecksumError, GalaxySDDataError, GalaxySDError, GalaxySDFileError,
                     GalaxySDValueError)

__version__ = "0.1.0"
__all__ = ["GalaxySDError", "GalaxySDValueError", "GalaxySDFileError", "GalaxySDDataError",
           "GalaxySDChecksumError", "__version__"]
