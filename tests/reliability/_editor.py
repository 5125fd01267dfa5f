"""One of eight concurrent studio processes: edits a shared config and writes its run's metrics.

Run as ``python tests/reliability/_editor.py URL CONFIG_ID RUN_ID INDEX SAVES``; prints a JSON
summary: saves made, conflicts reported, metric points written.
"""

from __future__ import annotations

import json
import sys

from codetune_studio.core.errors import ConflictError
from codetune_studio.core.models import MetricPoint
from codetune_studio.services.experiments import ExperimentService
from codetune_studio.storage.db import Database


def main() -> int:
    url, config_id, run_id, index, saves = sys.argv[1:6]
    database = Database.connect(url, connect_timeout=20)
    database.upgrade()  # eight processes starting migrations at once
    experiments = ExperimentService(database)
    done = conflicts = 0
    while done < int(saves):
        config = experiments.get_training_config(int(config_id))
        recipe = dict(config.recipe)
        recipe["edits"] = [*recipe.get("edits", []), f"p{index}-{done}"]
        try:
            experiments.save_training_config(
                int(config_id), recipe, expected_version=config.version
            )
        except ConflictError:
            conflicts += 1  # reported to the user; they reload and edit again
            continue
        done += 1
        points = [MetricPoint(step=done, name="loss", value=1.0 / done, wall_time=0.0)]
        experiments.record_metrics(int(run_id), points)
    database.dispose()
    sys.stdout.write(json.dumps({"saves": done, "conflicts": conflicts}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
