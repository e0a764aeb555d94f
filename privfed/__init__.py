"""privfed: federated training of medical-image classifiers, measured by attacking them.

The package is laid out the way data flows: ``data`` -> ``models`` -> ``federated``
(rounds, which write a run directory) -> ``attacks`` (read the run directory) ->
``reports`` (read only the JSON and PNG files of run directories).
"""

__version__ = "0.1.0"

#: Version of the run-directory layout; readers refuse directories written with another.
RUN_FORMAT_VERSION = 1
