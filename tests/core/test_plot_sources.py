"""The plot catalog's records and the source files that make a render's ETag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.plotting.catalog import EXPERIMENT_PLOTS, STUDY_PLOTS
from core.plotting.sources import render_sources, renderer_identity
from core.plotting.study.series import study_series
from tests.conftest import ROOT
from tests.core.result_samples import make_result

# Renders every plot of both catalogs in a fresh process, and prints the `core`
# modules it loaded (with their files): everything the drawing code imports.
RENDER_EVERY_PLOT = """
import json, sys
result, series = json.load(open(sys.argv[1]))
from core.plotting.catalog import EXPERIMENT_PLOTS, STUDY_PLOTS
for catalog, data in ((EXPERIMENT_PLOTS, result), (STUDY_PLOTS, series)):
    for name in catalog.available(data):
        catalog.render(name, data, width=320, height=240, dpi=50)
print(json.dumps({name: module.__file__ for name, module in sys.modules.items()
                  if name == "core" or name.startswith("core.")}))
"""


def test_every_core_module_a_render_loads_is_in_the_etag_sources(tmp_path: Path) -> None:
    result = make_result()
    configs = [{"index": 0, "label": "activation=sigmoid", "values": {}}]
    series = study_series(configs, 1, [result])
    data = tmp_path / "data.json"
    data.write_text(json.dumps([result, series]))
    done = subprocess.run(
        [sys.executable, "-c", RENDER_EVERY_PLOT, str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(done.stdout)
    sources = render_sources()
    assert "core.plotting.style" in loaded and "core.plotting.layout" in loaded
    missing = sorted(set(loaded) - set(sources))
    assert not missing, f"drawn by modules outside the ETag's sources: {missing}"
    for name, path in loaded.items():
        assert Path(path).resolve() == sources[name].resolve(), name


def test_the_sources_follow_imports_out_of_the_package() -> None:
    sources = render_sources()
    # Study plots ask the domain what a study of these specs will have, and spec
    # imports the layer list: both change what is drawn.
    assert {"core.experiment.spec", "core.experiment.layers"} <= set(sources)
    assert all(name == "core" or name.startswith("core.") for name in sources)
    assert "core.engine" not in sources and "core.store" not in sources
    assert len(renderer_identity()) == 32


def test_each_plot_name_is_one_record_with_a_description_and_a_reason() -> None:
    for catalog in (EXPERIMENT_PLOTS, STUDY_PLOTS):
        assert len(set(catalog.names)) == len(catalog.names)
        for kind in catalog.kinds:
            assert catalog[kind.name] is kind
            assert kind.description and kind.need.missing, kind.name
    eager = [kind.name for kind in EXPERIMENT_PLOTS.kinds if kind.eager]
    assert eager == ["weights", "gradients"]  # the tutorial's two, drawn as a job ends
    assert all(kind.need.planned is not None for kind in STUDY_PLOTS.kinds)
